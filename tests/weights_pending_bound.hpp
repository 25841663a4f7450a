#pragma once
// What an activation set waiting for its W may hold at most (ActivationSet::bytes after
// backward_input), as ChunkExecutor documents it: per block, its linear layers' inputs and output
// gradients — ln1 (C), qkv (3C), atty (C), mid (C), ln2 (C), fc (4C), fc_gelu (4C) and the
// block's output (C), 16 x d_model values per row at tp 1 — each padded to 64 values. Nothing of
// the head (logits), nothing per attention row.
#include <cstddef>

#include "loom/model/gpt_config.hpp"

namespace loom::test {

inline size_t weights_pending_bound(const GPTConfig& c, size_t rows, int blocks, size_t elem_bytes) {
  const size_t C = static_cast<size_t>(c.d_model);
  const size_t widths[] = {C, 3 * C, C, C, C, 4 * C, 4 * C, C};
  size_t per_block = 0;
  for (size_t w : widths) per_block += (rows * w + 63) / 64 * 64;
  return static_cast<size_t>(blocks) * per_block * elem_bytes;
}

}  // namespace loom::test
