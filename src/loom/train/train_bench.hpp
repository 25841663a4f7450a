#pragma once
// Training-throughput benchmark behind `loom bench train`: full training steps of a
// GPTModel<float> on random tokens (forward, backward, global grad-norm clip, AdamW, zero_grad),
// with a per-kernel time breakdown and MFU against an sgemm peak measured in the same process.
#include <cstdint>
#include <string>

#include "loom/kernels/cpu/gemm_peak.hpp"
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
  kernels::GemmPeak peak_before, peak_after;
  double mfu = 0;          // gflops / max(peak_before, peak_after)
  double best_mfu = 0;     // the same for the fastest step
  KernelProfile profile;   // mean per timed step
  double peak_rss_mib = 0;
  size_t activation_bytes = 0;  // the model's activation buffers (GPTModel::activation_bytes)
};

// Model FLOPs per trained token (forward + backward): 6 * N for the parameters plus causal
// attention's 6 * L * C * T (PaLM's 12 * L * C * T halved, as only j <= t is needed).
double train_flops_per_token(const GPTConfig& c, int seq);

TrainBenchResult run_train_bench(const TrainBenchOptions& opts);
std::string format_train_bench(const TrainBenchResult& r);

}  // namespace loom
