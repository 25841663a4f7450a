#pragma once
// The reference tokenizer: npm `tiktoken` (OpenAI's Rust tiktoken built to WASM) run by node in a
// subprocess. Used by the equivalence tests and by `loom bench tokenize`, never by training.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

struct ReferenceEncoding {
  std::vector<std::vector<int32_t>> ids;  // ids[i]: encode_ordinary(docs[i]) with tiktoken gpt2
  double seconds = 0;                     // node's time for the encode loop alone
};

// Encodes each document with tiktoken's gpt2 encoding (`encode_ordinary`). `npm_dir` is the
// node_modules folder holding tiktoken. Documents must be valid UTF-8 (a JS string cannot hold
// anything else). Throws loom::Error when node fails or runs longer than `timeout_s`.
ReferenceEncoding tiktoken_encode(const std::vector<std::string_view>& docs,
                                  const std::string& npm_dir, int timeout_s = 60);

}  // namespace loom
