#pragma once
// Whether the tests (and so `loom`, built with the same flags) run under AddressSanitizer
// (scripts/sanitize.sh asan). Its shadow memory, redzones and freed-memory quarantine change
// resident memory, so a test that measures RSS skips under it.

namespace loom::testing {

#if defined(__SANITIZE_ADDRESS__)  // g++, and clang from 11 on
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)  // older clang
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

}  // namespace loom::testing
