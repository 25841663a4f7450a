// CUDA element-wise, LayerNorm, embedding and softmax + cross-entropy kernels against their CPU
// twins (kernels/cpu, run in double on the same inputs). Skipped without a GPU.
#include "cuda_test_util.hpp"

#ifdef LOOM_WITH_CUDA
#include "loom/kernels/cpu/dropout.hpp"
#include "loom/kernels/cpu/embedding.hpp"
#include "loom/kernels/cpu/gelu.hpp"
#include "loom/kernels/cpu/layernorm.hpp"
#include "loom/kernels/cpu/residual.hpp"
#include "loom/kernels/cpu/softmax_ce.hpp"
#include "loom/kernels/cuda/dropout.hpp"
#include "loom/kernels/cuda/embedding.hpp"
#include "loom/kernels/cuda/gelu.hpp"
#include "loom/kernels/cuda/layernorm.hpp"
#include "loom/kernels/cuda/residual.hpp"
#include "loom/kernels/cuda/softmax_ce.hpp"

namespace loom {
namespace {

namespace cpu = kernels;
namespace gpu = kernels::cuda;
using test::from_bf16;
using test::kBF16Tolerance;
using test::kF32Tolerance;
using test::normwise_error;
using test::random_inputs;
using test::to_bf16;
using test::to_device;
using test::to_host;

TEST(CudaKernels, GeluForwardBackwardF32AndBF16) {
  LOOM_SKIP_WITHOUT_GPU();
  const size_t n = 100003;  // not a multiple of the block size
  const auto x = random_inputs(n, 1, 2.0), dy = random_inputs(n, 2);
  std::vector<double> y(n), dx(n);
  cpu::gelu_forward(y.data(), x.d.data(), n);
  cpu::gelu_backward(dx.data(), x.d.data(), dy.d.data(), n);

  auto gx = to_device(x.f), gdy = to_device(dy.f);
  device::cuda::DeviceArray<float> gy(n);
  gpu::gelu_forward(gy.data(), gx.data(), n);
  EXPECT_LT(normwise_error(to_host(gy), y), kF32Tolerance);
  gpu::gelu_backward(gdy.data(), gx.data(), gdy.data(), n);  // in place, as the model does
  EXPECT_LT(normwise_error(to_host(gdy), dx), kF32Tolerance);

  auto bx = to_device(to_bf16(x.f)), bdy = to_device(to_bf16(dy.f));
  device::cuda::DeviceArray<__nv_bfloat16> by(n);
  gpu::gelu_forward(by.data(), bx.data(), n);
  EXPECT_LT(normwise_error(from_bf16(to_host(by)), y), kBF16Tolerance);
  gpu::gelu_backward(bdy.data(), bx.data(), bdy.data(), n);
  EXPECT_LT(normwise_error(from_bf16(to_host(bdy)), dx), kBF16Tolerance);
}

TEST(CudaKernels, ResidualF32AndBF16) {
  LOOM_SKIP_WITHOUT_GPU();
  const size_t n = 7777;
  const auto a = random_inputs(n, 3), b = random_inputs(n, 4);
  std::vector<double> want(n);
  cpu::residual_forward(want.data(), a.d.data(), b.d.data(), n);
  auto ga = to_device(a.f), gb = to_device(b.f);
  device::cuda::DeviceArray<float> out(n);
  gpu::residual_forward(out.data(), ga.data(), gb.data(), n);
  EXPECT_LT(normwise_error(to_host(out), want), kF32Tolerance);
  auto ba = to_device(to_bf16(a.f)), bb = to_device(to_bf16(b.f));
  gpu::residual_forward(ba.data(), ba.data(), bb.data(), n);
  EXPECT_LT(normwise_error(from_bf16(to_host(ba)), want), kBF16Tolerance);
}

TEST(CudaKernels, DropoutMaskIsTheCpuMaskBitForBit) {
  LOOM_SKIP_WITHOUT_GPU();
  const size_t n = 1 << 18;
  for (float p : {0.0f, 0.1f, 0.5f}) {
    std::vector<uint8_t> want(n);
    cpu::dropout_mask(want.data(), n, p, 12345);
    device::cuda::DeviceArray<uint8_t> mask(n);
    gpu::dropout_mask(mask.data(), n, p, 12345);
    EXPECT_EQ(to_host(mask), want) << "p = " << p;
  }
  const float p = 0.2f;
  std::vector<uint8_t> mask(n);
  cpu::dropout_mask(mask.data(), n, p, 99);
  const auto x = random_inputs(n, 5);
  std::vector<double> want(n), dwant(n);
  cpu::dropout_forward(want.data(), x.d.data(), mask.data(), p, n);
  cpu::dropout_backward(dwant.data(), x.d.data(), mask.data(), p, n);
  auto gm = to_device(mask);
  auto gx = to_device(x.f);
  device::cuda::DeviceArray<float> gy(n);
  gpu::dropout_forward(gy.data(), gx.data(), gm.data(), p, n);
  EXPECT_LT(normwise_error(to_host(gy), want), kF32Tolerance);
  gpu::dropout_backward(gx.data(), gx.data(), gm.data(), p, n);
  EXPECT_LT(normwise_error(to_host(gx), dwant), kF32Tolerance);
}

TEST(CudaKernels, LayerNormForwardBackward) {
  LOOM_SKIP_WITHOUT_GPU();
  const int N = 517, C = 768;  // GPT-2's width; rows not a multiple of the warps per block
  const auto x = random_inputs(size_t{N} * C, 6, 3.0), w = random_inputs(C, 7),
             b = random_inputs(C, 8), dy = random_inputs(size_t{N} * C, 9);
  const auto dinp0 = random_inputs(size_t{N} * C, 10), dw0 = random_inputs(C, 11),
             db0 = random_inputs(C, 12);  // the backward accumulates into these
  std::vector<double> y(size_t{N} * C), mean(N), rstd(N);
  cpu::layernorm_forward(y.data(), mean.data(), rstd.data(), x.d.data(), w.d.data(), b.d.data(), N,
                         C);
  std::vector<double> dinp = dinp0.d, dw = dw0.d, db = db0.d;
  cpu::layernorm_backward(dinp.data(), dw.data(), db.data(), dy.d.data(), x.d.data(), w.d.data(),
                          mean.data(), rstd.data(), N, C);

  auto gx = to_device(x.f), gw = to_device(w.f), gb = to_device(b.f), gdy = to_device(dy.f);
  auto gdinp = to_device(dinp0.f), gdw = to_device(dw0.f), gdb = to_device(db0.f);
  device::cuda::DeviceArray<float> gy(size_t{N} * C), gmean(N), grstd(N);
  gpu::layernorm_forward(gy.data(), gmean.data(), grstd.data(), gx.data(), gw.data(), gb.data(), N,
                         C);
  EXPECT_LT(normwise_error(to_host(gy), y), kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(gmean), mean), kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(grstd), rstd), kF32Tolerance);
  gpu::layernorm_backward(gdinp.data(), gdw.data(), gdb.data(), gdy.data(), gx.data(), gw.data(),
                          gmean.data(), grstd.data(), N, C);
  EXPECT_LT(normwise_error(to_host(gdinp), dinp), kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(gdw), dw), kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(gdb), db), kF32Tolerance);
}

TEST(CudaKernels, EmbeddingForwardBackwardWithRepeatedTokens) {
  LOOM_SKIP_WITHOUT_GPU();
  const int B = 3, T = 37, C = 96, V = 50;  // V small: many repeated tokens
  Rng rng(13);
  std::vector<int32_t> tokens(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
  const auto wte = random_inputs(size_t{V} * C, 14), wpe = random_inputs(size_t{T} * C, 15),
             dy = random_inputs(size_t{B} * T * C, 16);
  const auto dwte0 = random_inputs(size_t{V} * C, 17), dwpe0 = random_inputs(size_t{T} * C, 18);
  std::vector<double> y(size_t{B} * T * C), dwte = dwte0.d, dwpe = dwpe0.d;
  cpu::embedding_forward(y.data(), tokens.data(), wte.d.data(), wpe.d.data(), B, T, C);
  cpu::embedding_backward(dwte.data(), dwpe.data(), dy.d.data(), tokens.data(), B, T, C);

  auto gtok = to_device(tokens);
  auto gwte = to_device(wte.f), gwpe = to_device(wpe.f), gdy = to_device(dy.f);
  auto gdwte = to_device(dwte0.f), gdwpe = to_device(dwpe0.f);
  device::cuda::DeviceArray<float> gy(size_t{B} * T * C);
  gpu::embedding_forward(gy.data(), gtok.data(), gwte.data(), gwpe.data(), B, T, C);
  EXPECT_LT(normwise_error(to_host(gy), y), kF32Tolerance);
  gpu::embedding_backward(gdwte.data(), gdwpe.data(), gdy.data(), gtok.data(), B, T, C);
  EXPECT_LT(normwise_error(to_host(gdwte), dwte), kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(gdwpe), dwpe), kF32Tolerance);
}

TEST(CudaKernels, SoftmaxCrossEntropyForwardBackward) {
  LOOM_SKIP_WITHOUT_GPU();
  const int N = 33, V = 50257;  // GPT-2's vocabulary: rows much longer than a block
  Rng rng(19);
  std::vector<int32_t> targets(N);
  for (auto& t : targets) t = static_cast<int32_t>(rng.below(V));
  const auto logits = random_inputs(size_t{N} * V, 20, 4.0);
  const double dloss = 1.0 / N;
  std::vector<double> losses(N), lse(N), dlogits(size_t{N} * V);
  cpu::softmax_ce_forward(losses.data(), lse.data(), logits.d.data(), targets.data(), N, V);
  cpu::softmax_ce_backward(dlogits.data(), logits.d.data(), lse.data(), targets.data(), dloss, N,
                           V);
  auto gt = to_device(targets);
  auto gl = to_device(logits.f);
  device::cuda::DeviceArray<float> glosses(N), glse(N);
  gpu::softmax_ce_forward(glosses.data(), glse.data(), gl.data(), gt.data(), N, V);
  EXPECT_LT(normwise_error(to_host(glosses), losses), kF32Tolerance);
  EXPECT_LT(normwise_error(to_host(glse), lse), kF32Tolerance);
  gpu::softmax_ce_backward(gl.data(), gl.data(), glse.data(), gt.data(), static_cast<float>(dloss),
                           N, V);  // in place, as the model does
  EXPECT_LT(normwise_error(to_host(gl), dlogits), kF32Tolerance);
}

}  // namespace
}  // namespace loom
#else
TEST(CudaKernels, NotBuilt) { GTEST_SKIP() << "this loom was built without CUDA"; }
#endif
