#pragma once
// Training-throughput benchmark behind `loom bench train`: full training steps of a
// GPTModel<float> on random tokens (forward + backward inside a MatmulPrecisionScope, global
// grad-norm clip, AdamW, zero_grad), with a per-kernel time breakdown and MFU against the f32
// and bf16 matmul peaks measured in the same process.
#include <cstdint>
#include <string>
#include <vector>

#include "loom/kernels/cpu/gemm_peak.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/model/kernel_profile.hpp"
#include "loom/model/recompute.hpp"

namespace loom {

struct TrainBenchOptions {
  GPTConfig model;
  int batch = 4;
  int seq = 256;
  int steps = 5;   // timed
  int warmup = 2;  // untimed
  uint64_t seed = 1;
  kernels::MatmulPrecision precision = kernels::MatmulPrecision::kF32;
  bool cache_weights = true;  // bf16: convert each weight once per step instead of per use
  Recompute recompute = Recompute::kNone;
};

struct TrainBenchResult {
  TrainBenchOptions opts;
  int64_t num_params = 0;
  double flops_per_token = 0;
  double step_s = 0;       // median of the timed steps (whole training step)
  double fwd_bwd_s = 0;    // median forward + backward alone
  double optimizer_s = 0;  // median of clip + AdamW + zero_grad
  double best_step_s = 0;  // fastest timed step (the machine is shared: noise only adds time)
  double tokens_per_s = 0;
  double gflops = 0;
  double final_loss = 0;   // loss of the last step (same data every step: shows the run is sane)
  KernelProfile profile;   // mean per timed step
  double bf16_weights_s = 0;  // per timed step: rounding weights to bf16 (thread-seconds)
  double bf16_others_s = 0;   // the same for activations and gradients
  double peak_rss_mib = 0; // the process's high-water mark so far
  size_t activation_bytes = 0;  // the model's activation buffers (ModelRunner::activation_bytes)
};

// Matmul peaks (2048^3) measured before and after the models, for MFU.
struct MatmulPeaks {
  kernels::GemmRate f32_before, f32_after, bf16_before, bf16_after;
  bool have_bf16 = false;
  double f32() const;   // max(before, after): the machine is shared, noise only lowers rates
  double bf16() const;  // 0 without bf16
};

// Measures f32 and (when available) bf16 peaks into `before` or `after`.
void measure_peaks(MatmulPeaks& peaks, bool before);

// Model FLOPs per trained token (forward + backward): 6 * N for the parameters plus causal
// attention's 6 * L * C * T (PaLM's 12 * L * C * T halved, as only j <= t is needed).
double train_flops_per_token(const GPTConfig& c, int seq);

TrainBenchResult run_train_bench(const TrainBenchOptions& opts);
std::string format_peaks(const MatmulPeaks& peaks);
std::string format_train_bench(const TrainBenchResult& r, const MatmulPeaks& peaks);

}  // namespace loom
