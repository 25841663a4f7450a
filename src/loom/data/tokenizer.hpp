#pragma once
// Text <-> token ids. Implementations: "gpt2" (byte-level BPE, ids identical to tiktoken's gpt2
// encoding; eot 50256) and "byte" (one id per byte, eot 256).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

// How every tokenizer decodes its end-of-text id (tiktoken does the same).
inline constexpr std::string_view kEndOfText = "<|endoftext|>";

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Plain text: "<|endoftext|>" in the text is encoded as ordinary characters.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Bytes of the ids concatenated (ids that split a UTF-8 character decode to its bytes; the
  // end-of-text id decodes to kEndOfText). Throws loom::Error for an id outside the vocabulary.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual int vocab_size() const = 0;
  virtual int eot_id() const = 0;
  virtual std::string name() const = 0;
};

// name: "gpt2" or "byte". The gpt2 vocabulary is found in $LOOM_VOCAB (a r50k_base.tiktoken
// file) or under the source tree's .deps/node_modules; the error says where it looked.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& name);

// node_modules of the source tree (scripts/setup.sh installs gpt-tokenizer and tiktoken there).
std::string default_npm_dir();

// Encodes many documents in parallel (OpenMP, one document per task); result[i] = encode(docs[i]).
std::vector<std::vector<int32_t>> encode_documents(const Tokenizer& tokenizer,
                                                   std::span<const std::string_view> docs);

}  // namespace loom
