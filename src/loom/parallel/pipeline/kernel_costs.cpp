#include "loom/parallel/pipeline/kernel_costs.hpp"

#include <algorithm>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/model/gpt.hpp"
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

}  // namespace

KernelCosts calibrate_kernel_costs(const GPTConfig& model, int seq, int threads) {
  LOOM_CHECK(seq >= 1 && seq <= model.context_len, "plan: sequence length ", seq,
             " outside [1, context_len ", model.context_len, "]");
  set_num_threads(threads);
  GPTConfig two = model;
  two.n_layer = 2;
  two.dropout = 0;
  GPT gpt(two);
  gpt.init_weights(1);
  Rng rng(7);
  std::vector<int32_t> tokens(static_cast<size_t>(seq) + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(two.vocab_size));
  KernelProfile profile, fastest;  // fastest: each kernel's minimum over the profiled steps
  fastest.forward_s.fill(1e300);
  fastest.backward_s.fill(1e300);
  // One untimed step (allocations, caches), then kProfiled profiled ones. On a shared machine a
  // step is slowed by whoever else runs: each kernel's fastest time is its own cost.
  constexpr int kProfiled = 5;
  double best = 1e300;
  for (int i = 0; i <= kProfiled; ++i) {
    gpt.set_profile(i == 0 ? nullptr : &profile);
    profile.clear();
    Timer t;
    gpt.zero_grad();
    gpt.forward(tokens.data(), tokens.data() + 1, 1, seq, /*train=*/true);
    gpt.backward();
    const double s = t.seconds();
    if (i == 0) continue;
    best = std::min(best, s);
    for (size_t k = 0; k < KernelProfile::kNum; ++k) {
      fastest.forward_s[k] = std::min(fastest.forward_s[k], profile.forward_s[k]);
      fastest.backward_s[k] = std::min(fastest.backward_s[k], profile.backward_s[k]);
    }
  }
  gpt.set_profile(nullptr);
  const auto& F = fastest.forward_s;
  const auto& Bk = fastest.backward_s;
  // Time outside the profiled kernels (loops, copies) is spread over the parts in proportion.
  double profiled = 0;
  for (size_t k = 0; k < KernelProfile::kNum; ++k) profiled += F[k] + Bk[k];
  const double spread = profiled > 0 ? std::max(1.0, best / profiled) : 1.0;

  KernelCosts c;
  c.seq = seq;
  c.threads = threads;
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

  // AdamW: the fastest of 3 steps over the 2-block model's parameters.
  AdamW opt(gpt.layout(), AdamWParams{});
  opt.step(gpt.params(), gpt.grads(), 1e-6f);
  double adamw = 1e300;
  for (int i = 0; i < 3; ++i) {
    Timer t;
    opt.step(gpt.params(), gpt.grads(), 1e-6f);
    adamw = std::min(adamw, t.seconds());
  }
  c.adamw_s_per_param = adamw / static_cast<double>(gpt.num_params());
  return c;
}

}  // namespace loom::planner
