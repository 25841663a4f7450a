#pragma once
// GPT-2's pre-tokenisation: the text is cut into pieces by tiktoken's `gpt2` pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// and BPE runs inside each piece. PCRE2 (UTF + UCP, JIT) does the matching. Two details keep the
// pieces identical to tiktoken's (Rust regex semantics):
// - \s is written \p{White_Space}: PCRE2's \s also matches U+180E, Rust's does not.
// - Invalid UTF-8 (PCRE2_MATCH_INVALID_UTF): no pattern item matches an invalid byte, so each
//   maximal run of invalid bytes becomes a piece of its own and the valid text between runs is
//   split exactly as tiktoken splits that text on its own.
#include <string_view>
#include <vector>

namespace loom {

class Pretokenizer {
 public:
  Pretokenizer();
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Appends the pieces of `text` to `pieces`; concatenated they are exactly `text`.
  // Thread-safe (each call has its own match state).
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  void* code_;  // pcre2_code_8 (kept out of the header so users need no PCRE2 include)
};

}  // namespace loom
