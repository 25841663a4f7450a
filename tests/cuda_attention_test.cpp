// The fused CUDA attention against the CPU attention (which stores the B x H x T x T
// probabilities), with and without dropout, and its memory footprint. Skipped without a GPU,
// except the argument checks, which run on the host before anything is launched.
#include "cuda_test_util.hpp"
#include "error_of.hpp"

#ifdef LOOM_WITH_CUDA
#include <omp.h>

#include "loom/kernels/cpu/attention.hpp"
#include "loom/kernels/cpu/dropout.hpp"
#include "loom/kernels/cuda/attention.hpp"

namespace loom {
namespace {

using test::kF32Tolerance;
using test::normwise_error;
using test::random_inputs;
using test::to_device;
using test::to_host;

void expect_matches_cpu(const kernels::AttentionShape& s, float p, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "B=" << s.B << " T=" << s.Tn << " C=" << s.C << " H=" << s.H
                                  << " p=" << p);
  const size_t nqkv = size_t{1} * s.B * s.Tn * 3 * s.C, nout = size_t{1} * s.B * s.Tn * s.C;
  const size_t natt = size_t{1} * s.B * s.H * s.Tn * s.Tn;
  const auto qkv = random_inputs(nqkv, 21, 1.5), dout = random_inputs(nout, 22);
  std::vector<uint8_t> mask(natt);
  kernels::dropout_mask(mask.data(), natt, p, seed);
  std::vector<double> out(nout), att(natt), dqkv(nqkv),
      scratch(kernels::attention_scratch_size(s, omp_get_max_threads()));
  kernels::attention_forward(out.data(), att.data(), qkv.d.data(), p > 0 ? mask.data() : nullptr, p,
                             s, scratch.data(), scratch.size());
  kernels::attention_backward(dqkv.data(), dout.d.data(), qkv.d.data(), att.data(),
                              p > 0 ? mask.data() : nullptr, p, s, scratch.data(), scratch.size());

  auto gqkv = to_device(qkv.f), gdout = to_device(dout.f);
  device::cuda::DeviceArray<float> gout(nout), glse(size_t{1} * s.B * s.H * s.Tn), gdqkv(nqkv);
  kernels::cuda::attention_forward(gout.data(), glse.data(), gqkv.data(), p, seed, s);
  EXPECT_LT(normwise_error(to_host(gout), out), kF32Tolerance);
  kernels::cuda::attention_backward(gdqkv.data(), gdout.data(), gqkv.data(), gout.data(),
                                    glse.data(), p, seed, s);
  EXPECT_LT(normwise_error(to_host(gdqkv), dqkv), kF32Tolerance);
}

TEST(CudaAttention, MatchesCpuHeadSize64) {
  LOOM_SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 100, 128, 2}, 0.0f, 0);  // T not a multiple of the tiles
  expect_matches_cpu({1, 64, 64, 1}, 0.0f, 0);
}

TEST(CudaAttention, MatchesCpuHeadSize32) {
  LOOM_SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 77, 96, 3}, 0.0f, 0);
}

TEST(CudaAttention, MatchesCpuWithDropout) {
  LOOM_SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 70, 128, 2}, 0.1f, 777);
  expect_matches_cpu({1, 45, 64, 2}, 0.5f, 3);
}

TEST(CudaAttention, NeverAllocatesTheScoreMatrix) {
  LOOM_SKIP_WITHOUT_GPU();
  const kernels::AttentionShape s{4, 1024, 768, 12};  // gpt2-small, T = 1024
  const size_t nqkv = size_t{1} * s.B * s.Tn * 3 * s.C, nout = size_t{1} * s.B * s.Tn * s.C;
  device::cuda::DeviceArray<float> qkv(nqkv), out(nout), lse(size_t{1} * s.B * s.H * s.Tn),
      dqkv(nqkv);
  std::vector<float> ones(nqkv, 0.01f);
  device::cuda::copy_to_device(qkv.data(), ones.data(), nqkv * sizeof(float));
  device::cuda::copy_to_device(out.data(), ones.data(), nout * sizeof(float));
  auto& pool = device::cuda::device_pool();
  const size_t before = pool.stats().bytes_in_use;
  pool.reset_peak();
  kernels::cuda::attention_forward(out.data(), lse.data(), qkv.data(), 0.1f, 5, s);
  kernels::cuda::attention_backward(dqkv.data(), out.data(), qkv.data(), out.data(), lse.data(),
                                    0.1f, 5, s);
  device::cuda::synchronize();
  const size_t extra = pool.stats().peak_in_use - before;
  const size_t scores = size_t{1} * s.B * s.H * s.Tn * s.Tn * sizeof(float);
  // Only the (B, H, T) row terms of the backward: 1/T of the score matrix.
  EXPECT_LE(extra, scores / s.Tn + (size_t{2} << 20)) << extra << " bytes beyond the inputs";
}

TEST(CudaAttention, RefusesUncompiledHeadSizesAndBadDropout) {
  // Host-side checks: they throw before any launch, so they run without a GPU too.
  EXPECT_NE(test::error_of([] {
              kernels::cuda::attention_forward(nullptr, nullptr, nullptr, 0.0f, 0, {1, 8, 96, 2});
            }).find("head size 48 is not compiled"),
            std::string::npos);
  EXPECT_NE(test::error_of([] {
              kernels::cuda::attention_forward(nullptr, nullptr, nullptr, 1.0f, 0, {1, 8, 128, 2});
            }).find("dropout p must be in [0, 1)"),
            std::string::npos);
}

}  // namespace
}  // namespace loom
#else
TEST(CudaAttention, NotBuilt) { GTEST_SKIP() << "this loom was built without CUDA"; }
#endif
