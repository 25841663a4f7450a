#pragma once
// Token embedding over a vocabulary split across the tensor-parallel ranks: each rank holds the
// wte rows [vocab_start, vocab_start + rows). Forward: each rank looks up the tokens it holds
// (zeros for the others), the caller all-reduces the (B, T, C) sums, then adds the (replicated)
// position embedding. Backward needs no communication: every rank has the same output gradient
// and accumulates the rows it holds.
#include <cstdint>

namespace loom::kernels {

// out[n, :] = wte[tokens[n] - vocab_start, :] if vocab_start <= tokens[n] < vocab_start + rows,
// else 0. out (N, C), wte (rows, C).
template <typename T>
void vocab_parallel_embedding_forward(T* out, const int32_t* tokens, const T* wte, int N, int C,
                                      int vocab_start, int rows);

// out[b, t, :] += wpe[t, :]. out (B, T, C), wpe (>= T, C).
template <typename T>
void add_position_embedding(T* out, const T* wpe, int B, int Tn, int C);

// dwte[tokens[n] - vocab_start, :] += dout[n, :] for the tokens this rank holds;
// dwpe[t, :] += sum_b dout[b, t, :]. dout (B, T, C).
template <typename T>
void vocab_parallel_embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens,
                                       int B, int Tn, int C, int vocab_start, int rows);

}  // namespace loom::kernels
