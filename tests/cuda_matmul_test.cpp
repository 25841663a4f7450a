// cuBLASLt matmul (kernels/cuda/matmul.hpp) against a double-precision reference of the same
// row-major interface as the CPU matmul: every transpose combination, padded leading
// dimensions, alpha/beta, and the f32 / TF32 / bf16 modes. Skipped without a GPU.
#include "cuda_test_util.hpp"

#ifdef LOOM_WITH_CUDA
#include "loom/core/check.hpp"
#include "loom/kernels/cuda/matmul.hpp"

namespace loom {
namespace {

using test::from_bf16;
using test::normwise_error;
using test::random_inputs;
using test::to_bf16;
using test::to_device;
using test::to_host;

struct Case {
  bool ta, tb;
  int M, N, K, pad;  // leading dimensions are the minimal ones + pad
};

// C = alpha op(A) op(B) + beta C in double, row-major, same storage conventions.
std::vector<double> reference(const Case& c, double alpha, const std::vector<double>& A, int lda,
                              const std::vector<double>& B, int ldb, double beta,
                              const std::vector<double>& C, int ldc) {
  std::vector<double> out = C;
  for (int m = 0; m < c.M; ++m)
    for (int n = 0; n < c.N; ++n) {
      double s = 0;
      for (int k = 0; k < c.K; ++k) {
        const double a = c.ta ? A[size_t{1} * k * lda + m] : A[size_t{1} * m * lda + k];
        const double b = c.tb ? B[size_t{1} * n * ldb + k] : B[size_t{1} * k * ldb + n];
        s += a * b;
      }
      out[size_t{1} * m * ldc + n] = alpha * s + beta * C[size_t{1} * m * ldc + n];
    }
  return out;
}

enum class Mode { kF32, kTF32, kBF16ToF32, kBF16ToBF16 };

double run_case(const Case& c, Mode mode) {
  const int lda = (c.ta ? c.M : c.K) + c.pad, ldb = (c.tb ? c.K : c.N) + c.pad, ldc = c.N + c.pad;
  const size_t na = size_t{1} * (c.ta ? c.K : c.M) * lda, nb = size_t{1} * (c.tb ? c.N : c.K) * ldb,
               nc = size_t{1} * c.M * ldc;
  auto A = random_inputs(na, 31), B = random_inputs(nb, 32), C = random_inputs(nc, 33);
  const float alpha = 0.75f, beta = 0.5f;
  const bool bf16 = mode == Mode::kBF16ToF32 || mode == Mode::kBF16ToBF16;
  if (bf16) {  // the reference multiplies the bf16-rounded inputs exactly
    A.f = from_bf16(to_bf16(A.f));
    B.f = from_bf16(to_bf16(B.f));
    A.d.assign(A.f.begin(), A.f.end());
    B.d.assign(B.f.begin(), B.f.end());
  }
  if (mode == Mode::kBF16ToBF16) {
    C.f = from_bf16(to_bf16(C.f));
    C.d.assign(C.f.begin(), C.f.end());
  }
  const auto want = reference(c, alpha, A.d, lda, B.d, ldb, beta, C.d, ldc);
  namespace gpu = kernels::cuda;
  switch (mode) {
    case Mode::kF32:
    case Mode::kTF32: {
      gpu::F32MathScope math(mode == Mode::kTF32 ? gpu::F32Math::kTF32 : gpu::F32Math::kExact);
      auto gA = to_device(A.f), gB = to_device(B.f), gC = to_device(C.f);
      gpu::matmul(c.ta, c.tb, c.M, c.N, c.K, alpha, gA.data(), lda, gB.data(), ldb, beta, gC.data(),
                  ldc);
      return normwise_error(to_host(gC), want);
    }
    case Mode::kBF16ToF32: {
      auto gA = to_device(to_bf16(A.f)), gB = to_device(to_bf16(B.f));
      auto gC = to_device(C.f);
      gpu::matmul(c.ta, c.tb, c.M, c.N, c.K, alpha, gA.data(), lda, gB.data(), ldb, beta, gC.data(),
                  ldc);
      return normwise_error(to_host(gC), want);
    }
    case Mode::kBF16ToBF16: {
      auto gA = to_device(to_bf16(A.f)), gB = to_device(to_bf16(B.f));
      auto gC = to_device(to_bf16(C.f));
      gpu::matmul(c.ta, c.tb, c.M, c.N, c.K, alpha, gA.data(), lda, gB.data(), ldb, beta, gC.data(),
                  ldc);
      return normwise_error(from_bf16(to_host(gC)), want);
    }
  }
  return 1;
}

const Case kCases[] = {{false, false, 67, 45, 129, 0},
                       {true, false, 67, 45, 129, 3},
                       {false, true, 67, 45, 129, 5},
                       {true, true, 67, 45, 129, 8},
                       {false, false, 256, 2304, 768, 0}};  // GPT-2's c_attn at B*T = 256

TEST(CudaMatmul, F32IsExactFloat) {
  LOOM_SKIP_WITHOUT_GPU();
  for (const Case& c : kCases)
    EXPECT_LT(run_case(c, Mode::kF32), test::kF32Tolerance)
        << "ta=" << c.ta << " tb=" << c.tb << " M=" << c.M << " N=" << c.N << " K=" << c.K;
}

TEST(CudaMatmul, TF32WithinTF32Rounding) {
  LOOM_SKIP_WITHOUT_GPU();
  for (const Case& c : kCases) {
    const double err = run_case(c, Mode::kTF32);
    EXPECT_LT(err, 5e-3) << "ta=" << c.ta << " tb=" << c.tb;  // 10-bit mantissa inputs
  }
}

TEST(CudaMatmul, BF16InputsAccumulateInF32) {
  LOOM_SKIP_WITHOUT_GPU();
  for (const Case& c : kCases) {
    // Products of bf16 values are exact in f32: only the f32 accumulation rounds.
    EXPECT_LT(run_case(c, Mode::kBF16ToF32), test::kF32Tolerance)
        << "ta=" << c.ta << " tb=" << c.tb;
    EXPECT_LT(run_case(c, Mode::kBF16ToBF16), test::kBF16Tolerance)
        << "ta=" << c.ta << " tb=" << c.tb;
  }
}

TEST(CudaMatmul, RefusesTooSmallLeadingDimension) {
  // Checked on the host before cuBLASLt is touched: runs without a GPU too.
  const float* none = nullptr;
  try {
    kernels::cuda::matmul(false, false, 4, 4, 4, 1.0f, none, 3, none, 4, 0.0f,
                          static_cast<float*>(nullptr), 4);
    ADD_FAILURE() << "lda 3 < K 4 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("leading dimension"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loom
#else
TEST(CudaMatmul, NotBuilt) { GTEST_SKIP() << "this loom was built without CUDA"; }
#endif
