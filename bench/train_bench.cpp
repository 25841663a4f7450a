#include "bench/train_bench.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/optim/adamw.hpp"
#include "loom/optim/grad_clip.hpp"

namespace loom {

namespace {

double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  }
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

double MatmulPeaks::f32() const { return std::max(f32_before.gflops, f32_after.gflops); }
double MatmulPeaks::bf16() const {
  return have_bf16 ? std::max(bf16_before.gflops, bf16_after.gflops) : 0.0;
}

void measure_peaks(MatmulPeaks& peaks, bool before) {
  using kernels::MatmulPrecision;
  peaks.have_bf16 = kernels::bf16_matmul_available();
  (before ? peaks.f32_before : peaks.f32_after) = kernels::measure_gemm_peak(MatmulPrecision::kF32);
  if (peaks.have_bf16) {
    (before ? peaks.bf16_before : peaks.bf16_after) =
        kernels::measure_gemm_peak(MatmulPrecision::kBF16);
  }
}

double train_flops_per_token(const GPTConfig& c, int seq) {
  return 6.0 * static_cast<double>(c.num_params()) +
         6.0 * c.n_layer * static_cast<double>(c.d_model) * seq;
}

TrainBenchResult run_train_bench(const TrainBenchOptions& opts) {
  LOOM_CHECK(opts.batch > 0, "--batch_size must be > 0, got ", opts.batch);
  LOOM_CHECK(opts.seq > 0 && opts.seq <= opts.model.context_len, "--seq_len must be in [1, ",
             opts.model.context_len, "], got ", opts.seq);
  LOOM_CHECK(opts.steps > 0 && opts.warmup >= 0, "--steps must be > 0 and --warmup >= 0");
  TrainBenchResult r;
  r.opts = opts;

  GPTModel<float> model(opts.model);
  model.init_weights(opts.seed);
  ModelRunner<float> runner(model, {0, opts.recompute, /*split_backward=*/false});
  r.num_params = static_cast<int64_t>(model.num_params());
  const int N = opts.batch * opts.seq;
  Rng rng(opts.seed);
  std::vector<int32_t> tokens(N + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(opts.model.vocab_size));

  AdamW optimizer(model.layout(), AdamWParams{});
  KernelProfile profile;
  std::vector<double> step_times, fwd_bwd_times, opt_times;
  kernels::Bf16ConversionTime conv_start;
  for (int s = 0; s < opts.warmup + opts.steps; ++s) {
    const bool timed = s >= opts.warmup;
    if (s == opts.warmup) conv_start = kernels::bf16_conversion_time();
    runner.executor().set_profile(timed ? &profile : nullptr);
    Timer t;
    {
      kernels::MatmulPrecisionScope precision(opts.precision, opts.cache_weights);
      r.final_loss =
          runner.forward(tokens.data(), tokens.data() + 1, opts.batch, opts.seq, true, &rng);
      runner.backward();
    }
    const double fwd_bwd = t.seconds();
    const double norm = std::sqrt(grad_sq_sum(model.grads(), model.num_params()));
    optimizer.step(model.params(), model.grads(), 1e-4f, clip_scale(norm, 1.0f));
    model.zero_grad();
    if (timed) {
      step_times.push_back(t.seconds());
      fwd_bwd_times.push_back(fwd_bwd);
      opt_times.push_back(step_times.back() - fwd_bwd);
    }
  }
  const kernels::Bf16ConversionTime conv_end = kernels::bf16_conversion_time();
  r.bf16_weights_s = (conv_end.weights_s - conv_start.weights_s) / opts.steps;
  r.bf16_others_s = (conv_end.others_s - conv_start.others_s) / opts.steps;
  for (auto& v : profile.forward_s) v /= opts.steps;
  for (auto& v : profile.backward_s) v /= opts.steps;
  r.profile = profile;
  r.peak_rss_mib = peak_rss_mib();
  r.activation_bytes = runner.activation_bytes();

  std::sort(step_times.begin(), step_times.end());
  r.step_s = step_times[step_times.size() / 2];
  r.best_step_s = step_times.front();
  r.fwd_bwd_s = median(fwd_bwd_times);
  r.optimizer_s = median(opt_times);
  r.flops_per_token = train_flops_per_token(opts.model, opts.seq);
  r.tokens_per_s = N / r.step_s;
  r.gflops = r.flops_per_token * r.tokens_per_s * 1e-9;
  return r;
}

std::string format_peaks(const MatmulPeaks& p) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "matmul peak (%dx%dx%d, median of %d; before / after the models): f32 (%s) "
                "%.1f / %.1f GFLOP/s",
                p.f32_before.shape.M, p.f32_before.shape.M, p.f32_before.shape.M,
                p.f32_before.reps, kernels::backend_name(kernels::f32_backend()),
                p.f32_before.gflops, p.f32_after.gflops);
  std::string s = buf;
  if (p.have_bf16) {
    std::snprintf(buf, sizeof buf, ", bf16 (oneDNN) %.1f / %.1f GFLOP/s", p.bf16_before.gflops,
                  p.bf16_after.gflops);
    s += buf;
  } else {
    s += ", bf16 unavailable";
  }
  return s + "\n";
}

std::string format_train_bench(const TrainBenchResult& r, const MatmulPeaks& peaks) {
  const auto& o = r.opts;
  const auto& c = o.model;
  char buf[512];
  std::ostringstream os;
  std::snprintf(buf, sizeof buf,
                "model: L=%d H=%d C=%d V=%d, %lld params; batch %d x seq %d = %d tokens/step, "
                "%d threads\n",
                c.n_layer, c.n_head, c.d_model, c.vocab_size, static_cast<long long>(r.num_params),
                o.batch, o.seq, o.batch * o.seq, omp_get_max_threads());
  os << buf;
  std::snprintf(buf, sizeof buf,
                "FLOPs/token = 6*N + 6*L*C*T (PaLM 6N + 12*L*C*T with attention halved for the "
                "causal mask) = 6*%lld + 6*%d*%d*%d = %.4g\n",
                static_cast<long long>(r.num_params), c.n_layer, c.d_model, o.seq,
                r.flops_per_token);
  os << buf;
  const char* prec = kernels::precision_name(o.precision);
  std::snprintf(buf, sizeof buf,
                "[%s%s] timed: whole training step (forward, backward, clip, AdamW, zero_grad), "
                "median of %d steps after %d warm-up\n",
                prec, o.precision == kernels::MatmulPrecision::kBF16
                          ? (o.cache_weights ? ", weights converted once per step"
                                             : ", weights converted per use")
                          : "",
                o.steps, o.warmup);
  os << buf;
  const double best_gflops = r.flops_per_token * o.batch * o.seq / r.best_step_s * 1e-9;
  std::snprintf(buf, sizeof buf,
                "[%s] step %.1f ms | %.0f tokens/s | %.1f GFLOP/s | MFU %.1f%% of the f32 peak",
                prec, r.step_s * 1e3, r.tokens_per_s, r.gflops, 100 * r.gflops / peaks.f32());
  os << buf;
  if (peaks.have_bf16) {
    std::snprintf(buf, sizeof buf, ", %.1f%% of the bf16 peak", 100 * r.gflops / peaks.bf16());
    os << buf;
  }
  std::snprintf(buf, sizeof buf,
                " | fastest step %.1f ms (%.1f GFLOP/s) | loss %.4f | peak RSS %.0f MiB\n",
                r.best_step_s * 1e3, best_gflops, r.final_loss, r.peak_rss_mib);
  os << buf;
  std::snprintf(buf, sizeof buf, "recompute %s: activations %.1f MiB\n",
                recompute_name(o.recompute), r.activation_bytes / 1048576.0);
  os << buf;
  std::snprintf(buf, sizeof buf,
                "of which forward + backward %.1f ms, optimizer (clip + AdamW + zero_grad) %.1f ms\n",
                r.fwd_bwd_s * 1e3, r.optimizer_s * 1e3);
  os << buf;
  double total = 0;
  for (size_t k = 0; k < KernelProfile::kNum; ++k) {
    total += r.profile.forward_s[k] + r.profile.backward_s[k];
  }
  const double step_mean = std::max(total, 1e-12);
  os << "per-kernel time per step (mean of the timed steps):\n";
  std::snprintf(buf, sizeof buf, "  %-18s %10s %6s %10s %6s\n", "kernel", "fwd ms", "fwd%",
                "bwd ms", "bwd%");
  os << buf;
  for (size_t k = 0; k < KernelProfile::kNum; ++k) {
    const double f = r.profile.forward_s[k], b = r.profile.backward_s[k];
    if (f == 0 && b == 0) continue;
    std::snprintf(buf, sizeof buf, "  %-18s %10.1f %5.1f%% %10.1f %5.1f%%\n",
                  kernel_name(static_cast<Kernel>(k)), f * 1e3, 100 * f / step_mean, b * 1e3,
                  100 * b / step_mean);
    os << buf;
  }
  std::snprintf(buf, sizeof buf, "  %-18s %10.1f ms in kernels (%.1f%% of the median step)\n",
                "total", total * 1e3, 100 * total / r.step_s);
  os << buf;
  if (o.precision == kernels::MatmulPrecision::kBF16) {
    std::snprintf(buf, sizeof buf,
                  "  inside the matmul rows: rounding operands to bf16 %.1f ms per step (weights "
                  "%.1f ms, activations and gradients %.1f ms; thread-seconds)\n",
                  (r.bf16_weights_s + r.bf16_others_s) * 1e3, r.bf16_weights_s * 1e3,
                  r.bf16_others_s * 1e3);
    os << buf;
  }
  return os.str();
}

}  // namespace loom
