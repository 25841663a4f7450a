#include "loom/parallel/pipeline/kernel_costs.hpp"

#include <algorithm>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/model/kernel_profile.hpp"
#include "loom/optim/adamw.hpp"

namespace loom::planner {
namespace {

double at(const std::array<double, KernelProfile::kNum>& a, Kernel k) {
  return a[static_cast<size_t>(k)];
}

bool is_linear(Kernel k) {
  return k == Kernel::kMatmulQKV || k == Kernel::kMatmulAttnProj || k == Kernel::kMatmulFC ||
         k == Kernel::kMatmulMLPProj || k == Kernel::kLMHead;
}

// A kernel's work on a sequence of T tokens of a model of width C and vocabulary V, up to a
// constant of the kernel (extrapolation only takes ratios).
double work(Kernel k, double T, double C, double V) {
  switch (k) {
    case Kernel::kMatmulQKV:
    case Kernel::kMatmulAttnProj:
    case Kernel::kMatmulFC:
    case Kernel::kMatmulMLPProj: return T * C * C;
    case Kernel::kLMHead: return T * C * V;
    case Kernel::kAttention: return T * T * C;
    case Kernel::kSoftmaxCE: return T * V;
    default: return T * C;  // embedding, LayerNorm, residual, GELU, dropout
  }
}

}  // namespace

KernelTimes shape_to_time(const GPTConfig& model, int seq, int threads) {
  KernelTimes t;
  t.d_model = model.d_model;
  t.n_head = model.n_head;
  t.vocab_size = model.vocab_size;
  t.seq = seq;
  t.threads = threads;
  return t;
}

KernelTimes time_kernels(const GPTConfig& model, int seq, int threads, int profiled_steps) {
  LOOM_CHECK(seq >= 1 && seq <= model.context_len, "plan: sequence length ", seq,
             " outside [1, context_len ", model.context_len, "]");
  set_num_threads(threads);
  GPTConfig two = model;
  two.n_layer = 2;
  two.dropout = 0;
  GPT gpt(two);
  gpt.init_weights(1);
  ModelRunner<float> run(gpt);
  Rng rng(7);
  std::vector<int32_t> tokens(static_cast<size_t>(seq) + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(two.vocab_size));
  KernelTimes out = shape_to_time(model, seq, threads);
  KernelProfile profile;  // each kernel's minimum over the profiled steps goes to `out`
  out.forward_s.fill(1e300);
  out.backward_s.fill(1e300);
  // One untimed step (allocations, caches), then the profiled ones. On a shared machine a step
  // is slowed by whoever else runs: each kernel's fastest time is its own cost.
  LOOM_CHECK(profiled_steps >= 1, "time_kernels: profiled_steps must be >= 1, got ", profiled_steps);
  out.step_s = 1e300;
  for (int i = 0; i <= profiled_steps; ++i) {
    run.executor().set_profile(i == 0 ? nullptr : &profile);
    profile.clear();
    Timer t;
    gpt.zero_grad();
    run.forward(tokens.data(), tokens.data() + 1, 1, seq, /*train=*/true);
    run.backward();
    const double s = t.seconds();
    if (i == 0) continue;
    out.step_s = std::min(out.step_s, s);
    for (size_t k = 0; k < KernelProfile::kNum; ++k) {
      out.forward_s[k] = std::min(out.forward_s[k], profile.forward_s[k]);
      out.backward_s[k] = std::min(out.backward_s[k], profile.backward_s[k]);
    }
  }

  // AdamW: the fastest of 3 steps over the 2-block model's parameters.
  AdamW opt(gpt.layout(), AdamWParams{});
  opt.step(gpt.params(), gpt.grads(), 1e-6f);
  double adamw = 1e300;
  for (int i = 0; i < 3; ++i) {
    Timer t;
    opt.step(gpt.params(), gpt.grads(), 1e-6f);
    adamw = std::min(adamw, t.seconds());
  }
  out.adamw_s_per_param = adamw / static_cast<double>(gpt.num_params());
  return out;
}

KernelCosts kernel_costs(const KernelTimes& times, const GPTConfig& model, int seq) {
  // Each kernel's time on the model's shape: the measured one times the ratio of the works (1
  // exactly when the shapes agree).
  std::array<double, KernelProfile::kNum> F{}, Bk{};
  for (size_t i = 0; i < KernelProfile::kNum; ++i) {
    const auto k = static_cast<Kernel>(i);
    const double ratio = work(k, seq, model.d_model, model.vocab_size) /
                         work(k, times.seq, times.d_model, times.vocab_size);
    F[i] = times.forward_s[i] * ratio;
    Bk[i] = times.backward_s[i] * ratio;
  }
  // Time outside the profiled kernels (loops, copies) is spread over the parts in proportion.
  double measured = 0;
  for (size_t k = 0; k < KernelProfile::kNum; ++k) measured += times.forward_s[k] + times.backward_s[k];
  const double spread = measured > 0 ? std::max(1.0, times.step_s / measured) : 1.0;

  KernelCosts c;
  c.seq = seq;
  c.threads = times.threads;
  // 5 LayerNorms: two per block, one (ln_f) in the head.
  const double ln_f = at(F, Kernel::kLayerNorm) / 5, ln_b = at(Bk, Kernel::kLayerNorm) / 5;
  PartTime blocks;
  for (size_t i = 0; i < KernelProfile::kNum; ++i) {
    const auto k = static_cast<Kernel>(i);
    if (k == Kernel::kEmbedding || k == Kernel::kLMHead || k == Kernel::kSoftmaxCE ||
        k == Kernel::kLayerNorm)
      continue;
    blocks.f += F[i];
    const double w = is_linear(k) ? Bk[i] / 2 : 0;
    blocks.w += w;
    blocks.b += Bk[i] - w;
  }
  blocks.f += 4 * ln_f;
  blocks.b += 4 * ln_b;
  c.block = {spread * blocks.f / 2, spread * blocks.b / 2, spread * blocks.w / 2};
  c.block_attention_f = spread * at(F, Kernel::kAttention) / 2;
  c.embedding = {spread * at(F, Kernel::kEmbedding), 0, spread * at(Bk, Kernel::kEmbedding)};
  const double lm_b = at(Bk, Kernel::kLMHead);
  c.head = {spread * (at(F, Kernel::kLMHead) + at(F, Kernel::kSoftmaxCE) + ln_f),
            spread * (lm_b / 2 + at(Bk, Kernel::kSoftmaxCE) + ln_b), spread * lm_b / 2};
  c.adamw_s_per_param = times.adamw_s_per_param;
  return c;
}

KernelCosts calibrate_kernel_costs(const GPTConfig& model, int seq, int threads) {
  return kernel_costs(time_kernels(model, seq, threads), model, seq);
}

GPTConfig calibration_model(const GPTConfig& model, int seq, int* calibration_seq) {
  GPTConfig two = model;
  two.n_layer = 2;
  two.dropout = 0;
  const double T = seq, C = model.d_model, V = model.vocab_size;
  const double flops = 6 * T * (2 * 12 * C * C + C * V) + 2 * 6 * T * T * C;
  *calibration_seq = seq;
  if (flops <= 2e10) return two;
  two.d_model = std::min(model.d_model, 256);
  two.n_head = model.d_model <= 256 ? model.n_head : 4;
  two.vocab_size = std::min(model.vocab_size, 4096);
  *calibration_seq = std::min(seq, 256);
  two.context_len = *calibration_seq;
  return two;
}

}  // namespace loom::planner
