#pragma once
// The "byte" tokenizer: id = byte value (0-255), end of text = 256, vocab 257. For tests and tiny
// demos that must not depend on a vocabulary file.
#include "loom/data/tokenizer.hpp"

namespace loom {

class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int vocab_size() const override { return 257; }
  int eot_id() const override { return 256; }
  std::string name() const override { return "byte"; }
};

}  // namespace loom
