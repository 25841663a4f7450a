#pragma once
// The GPU's practical matmul peak through the same cuBLASLt path as the model's GEMMs: the
// yardstick (beside the datasheet's dense peak) for MFU on the GPU.
namespace loom::kernels::cuda {

enum class PeakPrecision { kBF16, kTF32, kF32 };

struct MatmulPeak {
  int n = 0;
  int reps = 0;
  double tflops = 0;  // median over the repetitions
  double best_tflops = 0;
};

// Times `reps` products C = A @ B of n x n matrices (bf16 inputs with f32 accumulation and
// output, or float in TF32 / exact f32) with CUDA events, after two untimed warm-up products.
MatmulPeak measure_matmul_peak(PeakPrecision p, int n = 8192, int reps = 20);

const char* peak_precision_name(PeakPrecision p);  // "bf16", "tf32", "f32"

}  // namespace loom::kernels::cuda
