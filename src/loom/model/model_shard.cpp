#include "loom/model/model_shard.hpp"

#include <string>

#include "loom/core/check.hpp"

namespace loom {

int padded_vocab(int vocab_size, int tp_size) {
  return (vocab_size + tp_size - 1) / tp_size * tp_size;
}

void check_tp_divides_heads(const GPTConfig& config, int tp_size, const char* flag) {
  if (tp_size >= 1 && config.n_head % tp_size == 0) return;
  std::string valid;
  for (int t = 1; t <= config.n_head; ++t) {
    if (config.n_head % t != 0) continue;
    if (!valid.empty()) valid += ", ";
    valid += std::to_string(t);
  }
  LOOM_FAIL(flag, " ", tp_size, ": tensor parallelism splits the attention heads, so it must divide n_head = ",
            config.n_head, " (valid: ", valid, ")");
}

void ModelShard::validate(const GPTConfig& c) const {
  check_tp_divides_heads(c, tp_size, "tp_size");
  LOOM_CHECK(tp_rank >= 0 && tp_rank < tp_size, "model shard: tp_rank ", tp_rank,
             " is outside [0, tp_size = ", tp_size, ")");
  LOOM_CHECK(!sequence_parallel || tp_size > 1,
             "model shard: sequence parallelism needs tp_size > 1, got ", tp_size);
  const int last = end_block(c);
  LOOM_CHECK(first_block >= 0 && first_block <= last && last <= c.n_layer,
             "model shard: blocks [", first_block, ", ", last, ") are not a range of [0, n_layer = ",
             c.n_layer, "]");
  LOOM_CHECK(first_block < last || has_embedding || has_head,
             "model shard: a stage needs at least one block, the embedding or the head");
  if (chunks.empty()) return;
  LOOM_CHECK(chunks.front().first == first_block && chunks.back().last == last,
             "model shard: chunks span blocks [", chunks.front().first, ", ", chunks.back().last,
             "), not the shard's [", first_block, ", ", last, ")");
  for (size_t c = 0; c < chunks.size(); ++c) {
    LOOM_CHECK(chunks[c].first < chunks[c].last, "model shard: chunk ", c, " has no block");
    LOOM_CHECK(c == 0 || chunks[c - 1].last <= chunks[c].first, "model shard: chunk ", c,
               " does not come after chunk ", c - 1);
  }
}

std::vector<BlockRange> ModelShard::block_chunks(const GPTConfig& c) const {
  if (!chunks.empty()) return chunks;
  return {{first_block, end_block(c)}};
}

}  // namespace loom
