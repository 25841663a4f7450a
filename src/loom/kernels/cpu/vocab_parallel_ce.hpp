#pragma once
// Softmax cross-entropy over a vocabulary split across the tensor-parallel ranks (Megatron's
// parallel cross-entropy). Each rank holds logits (N, Vl): columns [vocab_start, vocab_start+Vl)
// of the whole (N, V) logits, of which the first `valid` exist (the rest is vocabulary padding:
// never predicted, excluded from every sum). No rank ever holds the whole (N, V) logits; the
// caller all-reduces two small per-row vectors in between:
//   vocab_parallel_row_max   -> all-reduce max of row_max (N)
//   vocab_parallel_sum_exp   -> all-reduce sum of stats (2N)
//   vocab_parallel_ce_finish -> losses, lse (identical on every rank)
#include <cstdint>

namespace loom::kernels {

struct VocabSlice {
  int Vl;           // columns held (padding included)
  int valid;        // columns [0, valid) are real vocabulary entries
  int vocab_start;  // whole-vocabulary id of column 0
};

// row_max[N] = max over the valid columns of logits[n, :] (-inf when valid == 0).
template <typename T>
void vocab_parallel_row_max(T* row_max, const T* logits, int N, const VocabSlice& s);

// stats[0, N)  = sum over the valid columns of exp(logits[n, v] - row_max[n])
// stats[N, 2N) = logits[n, targets[n] - vocab_start] if this rank holds the target, else 0
// row_max: the all-reduced maximum.
template <typename T>
void vocab_parallel_sum_exp(T* stats, const T* logits, const T* row_max, const int32_t* targets,
                            int N, const VocabSlice& s);

// From the all-reduced max and stats: lse[n] = max + log(sum exp), losses[n] = lse[n] - target
// logit (written as (max - target) + log(sum) for accuracy with large logits).
template <typename T>
void vocab_parallel_ce_finish(T* losses, T* lse, const T* row_max, const T* stats, int N);

// dlogits[n, v] = (exp(logits[n, v] - lse[n]) - [v is the target]) * dloss on the valid columns,
// 0 on the padding. dlogits may alias logits.
template <typename T>
void vocab_parallel_ce_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                                T dloss, int N, const VocabSlice& s);

}  // namespace loom::kernels
