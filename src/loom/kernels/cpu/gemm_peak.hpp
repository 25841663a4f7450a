#pragma once
// Timed matmuls: the machine's practical peak (the yardstick for model FLOP utilisation, MFU)
// and the rate of any one product shape (`loom bench gemm`).
#include "loom/kernels/cpu/matmul.hpp"

namespace loom::kernels {

struct GemmShape {
  int M, N, K;
  bool trans_a = false, trans_b = false;
};

struct GemmRate {
  GemmShape shape{};
  int reps = 0;           // timed repetitions
  double gflops = 0;      // median over the repetitions
  double best_gflops = 0;
};

// Times `reps` products of `shape` on `backend` at `precision` (bf16 includes rounding both
// inputs to bf16, as every bf16 product in training does) on the current thread count, after
// one untimed warm-up product.
GemmRate measure_gemm(MatmulBackend backend, MatmulPrecision precision, const GemmShape& shape,
                      int reps);

// The n x n x n rate of the implementation that training uses at `precision`.
GemmRate measure_gemm_peak(MatmulPrecision precision, int n = 2048, int reps = 10);

}  // namespace loom::kernels
