#pragma once
// Which part of the model one rank holds: its tensor-parallel slice (tp_rank of tp_size) of the
// pipeline stage made of blocks [first_block, last_block), with the embedding (first stage) and
// ln_f + LM head + loss (last stage). The tied wte lives on every stage that has the embedding or
// the head. The default is the whole model on one rank.
#include <cstdint>
#include <vector>

#include "loom/model/gpt_config.hpp"

namespace loom {

struct BlockRange {
  int first = 0, last = 0;  // blocks [first, last)
};

struct ModelShard {
  int tp_rank = 0, tp_size = 1;
  int first_block = 0;
  int last_block = -1;  // one past the stage's last block; -1: n_layer
  bool has_embedding = true, has_head = true;
  // Interleaved pipeline schedules: the stage is several chunks (virtual stages) of blocks, in
  // increasing order, with the embedding on chunk 0 and the head on the last; first_block and
  // last_block then span them (chunks.front().first, chunks.back().last). Empty: one chunk,
  // [first_block, end_block).
  std::vector<BlockRange> chunks = {};
  // Megatron sequence parallelism (tp_size > 1): in the LayerNorm / dropout / residual regions
  // each tp rank holds rows [tp_rank x N / tp_size, (tp_rank + 1) x N / tp_size) of a forward's
  // N = B x T rows, for forwards whose T is a multiple of tp_size (others run plain tp).
  bool sequence_parallel = false;

  int end_block(const GPTConfig& c) const { return last_block < 0 ? c.n_layer : last_block; }
  int num_chunks() const { return chunks.empty() ? 1 : static_cast<int>(chunks.size()); }
  // The chunks' block ranges (one for a shard without chunks).
  std::vector<BlockRange> block_chunks(const GPTConfig& c) const;
  // Throws loom::Error naming the field when the shard does not fit `config` (e.g. tp_size not
  // dividing n_head, an empty or out-of-range block range).
  void validate(const GPTConfig& config) const;
};

// The vocabulary padded to a multiple of tp_size, as Megatron pads it: every tp rank holds
// padded_vocab / tp_size rows of wte; the padding rows are never predicted and never saved.
int padded_vocab(int vocab_size, int tp_size);

// "--tp T" errors: T must divide n_head (and so d_model, 3 d_model, 4 d_model). Names `flag`
// and lists the valid values.
void check_tp_divides_heads(const GPTConfig& config, int tp_size, const char* flag);

}  // namespace loom
