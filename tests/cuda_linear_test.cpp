// The CUDA linear layer and tied LM head against their CPU twins (kernels/cpu, in double on the
// same inputs), exact f32 GEMMs. Skipped without a GPU.
#include "cuda_test_util.hpp"

#ifdef LOOM_WITH_CUDA
#include "loom/kernels/cpu/linear.hpp"
#include "loom/kernels/cpu/lm_head.hpp"
#include "loom/kernels/cuda/linear.hpp"

namespace loom {
namespace {

using test::kF32Tolerance;
using test::normwise_error;
using test::random_inputs;
using test::to_device;
using test::to_host;

TEST(CudaLinear, ForwardBackwardWithAndWithoutBias) {
  LOOM_SKIP_WITHOUT_GPU();
  const int N = 300, IC = 96, OC = 160;  // N spans two bias-gradient chunks
  const auto x = random_inputs(size_t{N} * IC, 71), w = random_inputs(size_t{IC} * OC, 72),
             b = random_inputs(OC, 73), dy = random_inputs(size_t{N} * OC, 74);
  const auto dw0 = random_inputs(size_t{IC} * OC, 75), db0 = random_inputs(OC, 76);
  for (bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with bias" : "without bias");
    std::vector<double> y(size_t{N} * OC), dx(size_t{N} * IC), dw = dw0.d, db = db0.d;
    kernels::linear_forward(y.data(), x.d.data(), w.d.data(), bias ? b.d.data() : nullptr, N, IC,
                            OC);
    kernels::linear_backward(dx.data(), dw.data(), bias ? db.data() : nullptr, dy.d.data(),
                             x.d.data(), w.d.data(), N, IC, OC);
    auto gx = to_device(x.f), gw = to_device(w.f), gb = to_device(b.f), gdy = to_device(dy.f);
    auto gdw = to_device(dw0.f), gdb = to_device(db0.f);
    device::cuda::DeviceArray<float> gy(size_t{N} * OC), gdx(size_t{N} * IC);
    kernels::cuda::linear_forward(gy.data(), gx.data(), gw.data(), bias ? gb.data() : nullptr, N,
                                  IC, OC);
    kernels::cuda::linear_backward(gdx.data(), gdw.data(), bias ? gdb.data() : nullptr, gdy.data(),
                                   gx.data(), gw.data(), N, IC, OC);
    EXPECT_LT(normwise_error(to_host(gy), y), kF32Tolerance);
    EXPECT_LT(normwise_error(to_host(gdx), dx), kF32Tolerance);
    EXPECT_LT(normwise_error(to_host(gdw), dw), kF32Tolerance);
    EXPECT_LT(normwise_error(to_host(gdb), db), kF32Tolerance);  // unchanged without bias
  }
}

TEST(CudaLinear, LmHeadForwardBackward) {
  LOOM_SKIP_WITHOUT_GPU();
  const int N = 64, C = 96, V = 1001;
  const auto x = random_inputs(size_t{N} * C, 81), wte = random_inputs(size_t{V} * C, 82),
             dl = random_inputs(size_t{N} * V, 83), dwte0 = random_inputs(size_t{V} * C, 84);
  std::vector<double> logits(size_t{N} * V), dx(size_t{N} * C), dwte = dwte0.d;
  kernels::lm_head_forward(logits.data(), x.d.data(), wte.d.data(), N, C, V);
  kernels::lm_head_backward(dx.data(), dwte.data(), dl.d.data(), x.d.data(), wte.d.data(), N, C, V);
  auto gx = to_device(x.f), gwte = to_device(wte.f), gdl = to_device(dl.f),
       gdwte = to_device(dwte0.f);
  device::cuda::DeviceArray<float> glogits(size_t{N} * V), gdx(size_t{N} * C);
  kernels::cuda::lm_head_forward(glogits.data(), gx.data(), gwte.data(), N, C, V);
  kernels::cuda::lm_head_backward(gdx.data(), gdwte.data(), gdl.data(), gx.data(), gwte.data(), N,
                                  C, V);
  EXPECT_LT(normwise_error(to_host(glogits), logits), kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(gdx), dx), kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(gdwte), dwte), kF32Tolerance);
}

}  // namespace
}  // namespace loom
#else
TEST(CudaLinear, NotBuilt) { GTEST_SKIP() << "this loom was built without CUDA"; }
#endif
