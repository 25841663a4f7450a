#pragma once
// Byte-level BPE with tiktoken's merge rule: inside each pre-token piece, repeatedly merge the
// adjacent pair whose concatenated bytes have the lowest rank (leftmost on ties) until no pair is
// in the vocabulary; a token's id is its rank. With r50k_base.tiktoken and the GPT-2 pattern this
// is tiktoken's `gpt2` encoding (eot 50256, vocab 50257).
#include <string>

#include "loom/data/pretokenizer.hpp"
#include "loom/data/tokenizer.hpp"

namespace loom {

class BpeTokenizer final : public Tokenizer {
 public:
  // `ranks_path`: a .tiktoken file, one "base64(bytes) rank" per line.
  explicit BpeTokenizer(const std::string& ranks_path);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int vocab_size() const override { return eot_id_ + 1; }
  int eot_id() const override { return eot_id_; }
  std::string name() const override { return "gpt2"; }

 private:
  int32_t rank_of(std::string_view bytes) const;  // -1 when not in the vocabulary
  void insert_rank(std::string_view bytes, int32_t rank);
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  // bytes -> rank: open addressing with linear probing over a flat array at most 1/4 full. Rank
  // lookups are most of the encoding time, and a node-based std::unordered_map spends it on
  // cache misses. A slot holds the upper hash bits (to skip most byte comparisons) and the rank.
  struct Slot {
    uint32_t tag = 0;
    int32_t rank = -1;  // -1: empty
  };
  std::vector<Slot> table_;
  size_t mask_ = 0;
  std::vector<std::string> bytes_of_;  // id -> bytes
  int32_t eot_id_ = 0;
  Pretokenizer pretokenizer_;
};

}  // namespace loom
