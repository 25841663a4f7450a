// The device AdamW pass and gradient norm against the CPU optimizer (optim/). Skipped without a
// GPU.
#include "cuda_test_util.hpp"

#ifdef LOOM_WITH_CUDA
#include "loom/kernels/cuda/adamw.hpp"
#include "loom/kernels/cuda/grad_norm.hpp"
#include "loom/optim/adamw.hpp"
#include "loom/optim/grad_clip.hpp"

namespace loom {
namespace {

using test::normwise_error;
using test::random_inputs;
using test::to_device;
using test::to_host;

TEST(CudaOptim, AdamWMatchesCpuOverSeveralStepsWithAndWithoutDecay) {
  LOOM_SKIP_WITHOUT_GPU();
  // Two parameters: a decayed matrix and an undecayed bias, as the model's layout has them.
  const std::vector<ParamInfo> layout = {{"w", {100, 37}, 0, 3700, true, {}, {}},
                                         {"b", {37}, 3700, 37, false, {}, {}}};
  const size_t n = 3737;
  const AdamWParams hp{0.9f, 0.95f, 1e-8f, 0.1f};
  AdamW cpu(layout, hp);
  auto params = random_inputs(n, 41).f;
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  auto gp = to_device(params), gm = to_device(m), gv = to_device(v);
  for (int step = 1; step <= 3; ++step) {
    const auto grads = random_inputs(n, 50 + step).f;
    const float lr = 1e-2f * step, scale = step == 2 ? 0.5f : 1.0f;  // clipping on step 2
    cpu.step(params.data(), grads.data(), lr, scale);
    auto gg = to_device(grads);
    for (const ParamInfo& p : layout)
      kernels::cuda::adamw_update(
          gp.data() + p.offset, gg.data() + p.offset, gm.data() + p.offset, gv.data() + p.offset,
          p.numel,
          {lr, hp.beta1, hp.beta2, hp.eps, p.weight_decay ? hp.weight_decay : 0.0f, step, scale});
  }
  const std::vector<double> want_p(params.begin(), params.end()), want_m(cpu.m(), cpu.m() + n),
      want_v(cpu.v(), cpu.v() + n);
  EXPECT_LT(normwise_error(to_host(gp), want_p), test::kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(gm), want_m), test::kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(gv), want_v), test::kF32Tolerance);
}

TEST(CudaOptim, GradSquareSumMatchesCpu) {
  LOOM_SKIP_WITHOUT_GPU();
  for (size_t n : {size_t{1}, size_t{65535}, size_t{65537}, size_t{1000003}}) {
    const auto g = random_inputs(n, 60).f;
    const double want = grad_sq_sum(g.data(), n);
    auto gg = to_device(g);
    EXPECT_NEAR(kernels::cuda::grad_sq_sum(gg.data(), n), want, 1e-12 * want) << "n = " << n;
  }
}

}  // namespace
}  // namespace loom
#else
TEST(CudaOptim, NotBuilt) { GTEST_SKIP() << "this loom was built without CUDA"; }
#endif
