#define PCRE2_CODE_UNIT_WIDTH 8
#include "loom/data/pretokenizer.hpp"

#include <pcre2.h>

#include <memory>

#include "loom/core/check.hpp"

namespace loom {
namespace {

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+)"
    R"(|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+)";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

}  // namespace

Pretokenizer::Pretokenizer() {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &offset,
                                   nullptr);
  LOOM_CHECK(code != nullptr, "pretokenizer: PCRE2 cannot compile the GPT-2 pattern at offset ",
             offset, ": ", pcre2_message(err));
  const int jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  if (jit != 0) {
    pcre2_code_free(code);
    LOOM_FAIL("pretokenizer: PCRE2 JIT compilation failed: ", pcre2_message(jit),
              " (libpcre2-8 must be built with JIT)");
  }
  code_ = code;
}

Pretokenizer::~Pretokenizer() { pcre2_code_free(as_code(code_)); }

void Pretokenizer::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  pcre2_code* code = as_code(code_);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  LOOM_CHECK(md != nullptr, "pretokenizer: out of memory");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = pcre2_jit_match(code, subject, text.size(), pos, 0, md.get(), nullptr);
    // No match: only invalid UTF-8 is left (every valid character matches some alternative).
    const size_t begin = rc == PCRE2_ERROR_NOMATCH ? text.size() : ov[0];
    const size_t end = rc == PCRE2_ERROR_NOMATCH ? text.size() : ov[1];
    LOOM_CHECK(rc > 0 || rc == PCRE2_ERROR_NOMATCH, "pretokenizer: PCRE2 match failed at byte ",
               pos, ": ", pcre2_message(rc));
    if (begin > pos) pieces.push_back(text.substr(pos, begin - pos));  // invalid bytes
    if (end > begin) pieces.push_back(text.substr(begin, end - begin));
    pos = end;
  }
}

}  // namespace loom
