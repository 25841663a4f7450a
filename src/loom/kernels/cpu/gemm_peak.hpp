#pragma once
// The machine's practical sgemm peak: the yardstick for model FLOP utilisation (MFU).
namespace loom::kernels {

struct GemmPeak {
  int n = 0;             // square size
  int reps = 0;          // timed repetitions
  double gflops = 0;     // median over the repetitions
  double best_gflops = 0;
};

// Times `reps` products C = A @ B of n x n float matrices with cblas_sgemm on the current BLAS
// thread count, after one untimed warm-up product.
GemmPeak measure_sgemm_peak(int n = 2048, int reps = 10);

}  // namespace loom::kernels
