#pragma once
// Causal self-attention of new rows over a KV cache: each row is one query at position p of its
// sequence and attends to that sequence's cached keys/values 0..p (its own included, written to
// the cache before this runs). Prefill (many rows of one sequence) and decoding (one row per
// sequence) are the same call.
#include <cstddef>
#include <vector>

namespace loom::infer {

struct CachedRow {
  const float* k;  // (n_keys, C) keys of the row's sequence, rows `ld` floats apart
  const float* v;  // (n_keys, C) values, same layout
  int n_keys;      // position of the row + 1
};

// q   (N, 3C) fused q,k,v rows (only the q third is read); head h at columns h*hs .. h*hs+hs-1
// out (N, C)  = softmax(q k^T / sqrt(hs)) @ v per head, heads concatenated
// scratch: at least max n_keys floats per OpenMP thread.
void cached_attention_forward(float* out, const float* qkv, const std::vector<CachedRow>& rows,
                              int C, int H, size_t ld, std::vector<float>& scratch);

}  // namespace loom::infer
