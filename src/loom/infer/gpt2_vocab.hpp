#pragma once
// A Loom tokenizer's vocabulary in the form GPT-2's own files use, for exports other tools read
// (vocab.json/merges.txt of Hugging Face, tokenizer.ggml.tokens/merges of GGUF):
// - token strings: each byte mapped to a printable character by GPT-2's bytes_to_unicode table
//   (printable Latin-1 bytes stand for themselves; the other 68 bytes become U+0100...);
// - merges: "left right" in rank order, the pair whose merge produced each multi-byte token.
// The ranks Loom reads (r50k_base.tiktoken) are those of GPT-2, so merges are recovered by running
// BPE on each token's bytes with the lower ranks only: it ends in exactly the two parts whose
// merge made the token. The byte tokenizer (one id per byte) has no merges.
#include <string>
#include <string_view>
#include <vector>

#include "loom/data/tokenizer.hpp"

namespace loom::infer {

enum class TokenKind { Normal, Control, Unused };  // Control: end of text; Unused: padding ids

struct Gpt2Vocab {
  std::vector<std::string> tokens;   // by id; vocab_size entries
  std::vector<TokenKind> kinds;      // by id
  std::vector<std::string> merges;   // "left right", in rank order
  int eot_id = 0;
};

// The tokenizer's vocabulary padded to `vocab_size` ids (the model's; >= the tokenizer's) with
// unused tokens "<|pad_N|>".
Gpt2Vocab gpt2_vocab(const Tokenizer& tokenizer, int vocab_size);

// Bytes -> GPT-2's unicode token string (UTF-8).
std::string bytes_to_unicode(std::string_view bytes);

}  // namespace loom::infer
