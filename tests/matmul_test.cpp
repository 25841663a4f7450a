// kernels::matmul: bf16 products against float references for every transposition, the oneDNN
// f32 path against OpenBLAS, the per-scope weight cache, the precision scope reaching the GEMM
// kernels (per thread, and handed to OpenMP workers), and the forced bf16 fallback.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <latch>
#include <optional>
#include <thread>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/kernels/cpu/attention.hpp"
#include "loom/kernels/cpu/bf16.hpp"
#include "loom/kernels/cpu/linear.hpp"
#include "loom/kernels/cpu/matmul.hpp"

namespace loom::kernels {
namespace {

std::vector<float> random_floats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

float round_bf16(float x) { return from_bf16(to_bf16(x)); }

// C = alpha op(A) op(B) + beta C0 in double, on the stored (padded) layouts; `rounded` first
// rounds A and B to bf16. Also returns sum_k |op(A)[m,k] op(B)[k,n]| * |alpha| per element, the
// scale of the rounding error.
struct Reference {
  std::vector<double> c, scale;
};
Reference reference(bool ta, bool tb, int M, int N, int K, float alpha, const std::vector<float>& A,
                    int lda, const std::vector<float>& B, int ldb, float beta,
                    const std::vector<float>& C0, int ldc, bool rounded) {
  Reference r{std::vector<double>(C0.begin(), C0.end()), std::vector<double>(C0.size(), 0.0)};
  auto at = [&](const std::vector<float>& X, int i, int j, int ld, bool t) {
    const float x = t ? X[static_cast<size_t>(j) * ld + i] : X[static_cast<size_t>(i) * ld + j];
    return static_cast<double>(rounded ? round_bf16(x) : x);
  };
  for (int m = 0; m < M; ++m) {
    for (int n = 0; n < N; ++n) {
      double acc = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        const double p = at(A, m, k, lda, ta) * at(B, k, n, ldb, tb);
        acc += p;
        mag += std::abs(p);
      }
      const size_t i = static_cast<size_t>(m) * ldc + n;
      r.c[i] = alpha * acc + beta * C0[i];
      r.scale[i] = std::abs(alpha) * mag;
    }
  }
  return r;
}

TEST(Matmul, Bf16MatchesFloatReferenceForEveryTransposition) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const int M = 37, N = 29, K = 70;  // odd sizes: no kernel's natural blocking
  const float alpha = 0.7f, beta = 0.5f;
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      // Stored shapes with padded leading dimensions: the strides must be honoured.
      const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
      const auto A = random_floats(static_cast<size_t>(ta ? K : M) * lda, 1);
      const auto B = random_floats(static_cast<size_t>(tb ? N : K) * ldb, 2);
      const auto C0 = random_floats(static_cast<size_t>(M) * ldc, 3);
      std::vector<float> C = C0;
      {
        MatmulPrecisionScope bf16(MatmulPrecision::kBF16);
        matmul<float>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
      }
      const Reference exact = reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc, false);
      const Reference of_bf16 =
          reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc, true);
      double worst_exact = 0, worst_bf16 = 0, largest_gap = 0;
      for (int m = 0; m < M; ++m) {
        for (int n = 0; n < N; ++n) {
          const size_t i = static_cast<size_t>(m) * ldc + n;
          // bf16 keeps 8 significant bits: each product is off by at most ~2^-8 of its size.
          worst_exact = std::max(worst_exact, std::abs(C[i] - exact.c[i]) / exact.scale[i]);
          // With the rounding of the inputs accounted for, only float accumulation remains.
          worst_bf16 = std::max(worst_bf16, std::abs(C[i] - of_bf16.c[i]) / of_bf16.scale[i]);
          largest_gap = std::max(largest_gap, std::abs(exact.c[i] - of_bf16.c[i]) / exact.scale[i]);
        }
        for (int n = N; n < ldc; ++n) {  // the padding is not written
          const size_t i = static_cast<size_t>(m) * ldc + n;
          EXPECT_EQ(C[i], C0[i]);
        }
      }
      EXPECT_LT(worst_exact, 1.0 / 256) << "ta " << ta << " tb " << tb;
      EXPECT_LT(worst_bf16, 1e-6) << "ta " << ta << " tb " << tb;
      EXPECT_GT(largest_gap, 1e-4) << "the inputs were not rounded to bf16";
    }
  }
}

// Operands rounded once (RoundedOnce, rows padded to 64 elements) give the product of the
// bf16-rounded inputs, as A, as B and as both, each read through a view at row 1, column 1 of
// its stored matrix (RoundedView::at), for every transposition; under f32 they are not rounded.
TEST(Matmul, RoundedOnceOperandMatchesTheBf16Product) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const int M = 23, N = 19, K = 67;  // K odd like GPT-2's vocabulary
  for (int shared = 0; shared < 3; ++shared) {  // rounded beforehand: A, B, both
    const bool shared_a = shared != 1, shared_b = shared != 0;
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        // Stored operands with one extra leading row and column; the products read them from
        // (1, 1) on.
        const int a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K;
        const int b_cols = tb ? K : N, lda = a_cols + 1, ldb = b_cols + 3, ldc = N;
        const auto A = random_floats(static_cast<size_t>(a_rows + 1) * lda, 11);
        const auto B = random_floats(static_cast<size_t>(b_rows + 1) * ldb, 12);
        const auto C0 = random_floats(static_cast<size_t>(M) * ldc, 13);
        std::vector<float> C = C0;
        // The rounded operands' floats are zeroed after rounding: the product must read the
        // copies.
        std::vector<float> a_src = A, b_src = B;
        {
          MatmulPrecisionScope bf16(MatmulPrecision::kBF16);
          std::optional<RoundedOnce<float>> a, b;
          if (shared_a) a.emplace(a_src.data(), a_rows + 1, a_cols + 1, lda);
          if (shared_b) b.emplace(b_src.data(), b_rows + 1, b_cols + 1, ldb);
          for (const auto* r : {a ? &*a : nullptr, b ? &*b : nullptr}) {
            if (r == nullptr) continue;
            ASSERT_NE(r->rounded(), nullptr);
            EXPECT_EQ(r->rounded_ld() % 64, 0);
          }
          if (shared_a) std::fill(a_src.begin(), a_src.end(), 0.0f);
          if (shared_b) std::fill(b_src.begin(), b_src.end(), 0.0f);
          const size_t a1 = lda + 1, b1 = ldb + 1;  // element (1, 1)
          if (shared == 0) {
            matmul<float>(ta, tb, M, N, K, 0.5f, a->at(1, 1), B.data() + b1, ldb, 1.0f, C.data(),
                          ldc);
          } else if (shared == 1) {
            matmul<float>(ta, tb, M, N, K, 0.5f, A.data() + a1, lda, b->at(1, 1), 1.0f, C.data(),
                          ldc);
          } else {
            matmul<float>(ta, tb, M, N, K, 0.5f, a->at(1, 1), b->at(1, 1), 1.0f, C.data(), ldc);
          }
        }
        // The same matrices from (1, 1) on, for the references.
        const std::vector<float> A1(A.begin() + lda + 1, A.end()), B1(B.begin() + ldb + 1, B.end());
        const Reference of_bf16 =
            reference(ta, tb, M, N, K, 0.5f, A1, lda, B1, ldb, 1.0f, C0, ldc, true);
        const Reference exact =
            reference(ta, tb, M, N, K, 0.5f, A1, lda, B1, ldb, 1.0f, C0, ldc, false);
        double worst = 0, gap = 0;
        for (size_t i = 0; i < C.size(); ++i) {
          worst = std::max(worst, std::abs(C[i] - of_bf16.c[i]) / of_bf16.scale[i]);
          gap = std::max(gap, std::abs(exact.c[i] - C[i]) / exact.scale[i]);
        }
        EXPECT_LT(worst, 1e-6) << "shared " << shared << " ta " << ta << " tb " << tb;
        EXPECT_GT(gap, 1e-4) << "the operands were not rounded to bf16";
      }
    }
  }
  const auto x = random_floats(8, 14);
  EXPECT_EQ(RoundedOnce<float>(x.data(), 2, 4, 4).rounded(), nullptr);  // f32: no copy
}

// A thread holds up to kMaxRoundedOnce rounded operands at a time; one more is refused, and a
// released one makes room again.
TEST(Matmul, RoundedOnceBuffersPerThreadAreLimited) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  static_assert(RoundedOnce<float>::kMaxRoundedOnce == 4);
  const auto x = random_floats(8, 15);
  MatmulPrecisionScope scope(MatmulPrecision::kBF16);
  const RoundedOnce<float> r0(x.data(), 2, 4, 4), r1(x.data(), 2, 4, 4), r2(x.data(), 2, 4, 4);
  {
    const RoundedOnce<float> r3(x.data(), 2, 4, 4);
    EXPECT_NE(r3.rounded(), r2.rounded());
    EXPECT_THROW(RoundedOnce<float>(x.data(), 2, 4, 4), Error);
  }
  const RoundedOnce<float> again(x.data(), 2, 4, 4);
  const auto* rounded = static_cast<const bf16*>(again.rounded());
  EXPECT_EQ(from_bf16(rounded[again.rounded_ld() + 1]), round_bf16(x[4 + 1]));  // element (1, 1)
}

TEST(Matmul, OneDnnF32MatchesOpenBlas) {
  const int M = 33, N = 65, K = 130;
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      const int lda = ta ? M : K, ldb = tb ? K : N;
      const auto A = random_floats(static_cast<size_t>(M) * K, 4);
      const auto B = random_floats(static_cast<size_t>(K) * N, 5);
      const auto C0 = random_floats(static_cast<size_t>(M) * N, 6);
      std::vector<float> blas = C0, dnnl = C0;
      matmul_with(MatmulBackend::kOpenBLAS, MatmulPrecision::kF32, ta, tb, M, N, K, 1.5f,
                  A.data(), lda, B.data(), ldb, 1.0f, blas.data(), N);
      matmul_with(MatmulBackend::kOneDNN, MatmulPrecision::kF32, ta, tb, M, N, K, 1.5f, A.data(),
                  lda, B.data(), ldb, 1.0f, dnnl.data(), N);
      double worst = 0;
      for (size_t i = 0; i < blas.size(); ++i) {
        worst = std::max(worst, std::abs(blas[i] - dnnl[i]) / (1.0 + std::abs(blas[i])));
      }
      EXPECT_LT(worst, 1e-5) << "ta " << ta << " tb " << tb;
    }
  }
}

TEST(Matmul, WeightCopiesLiveOneScope) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const int N = 8, IC = 16, OC = 12;
  const auto x = random_floats(N * IC, 7);
  auto w = random_floats(IC * OC, 8);
  std::vector<float> first(N * OC), again(N * OC), fresh(N * OC);
  {
    MatmulPrecisionScope bf16(MatmulPrecision::kBF16);
    linear_forward<float>(first.data(), x.data(), w.data(), nullptr, N, IC, OC);
    for (auto& v : w) v *= 2;  // not allowed in a scope: shows that the copy is reused
    linear_forward<float>(again.data(), x.data(), w.data(), nullptr, N, IC, OC);
  }
  EXPECT_EQ(first, again);
  {
    MatmulPrecisionScope bf16(MatmulPrecision::kBF16);  // a new scope converts again
    linear_forward<float>(fresh.data(), x.data(), w.data(), nullptr, N, IC, OC);
  }
  for (size_t i = 0; i < fresh.size(); ++i) EXPECT_NEAR(fresh[i], 2 * first[i], 1e-5f) << i;
  {
    MatmulPrecisionScope per_use(MatmulPrecision::kBF16, /*cache_weights=*/false);
    linear_forward<float>(first.data(), x.data(), w.data(), nullptr, N, IC, OC);
    for (auto& v : w) v /= 2;
    linear_forward<float>(again.data(), x.data(), w.data(), nullptr, N, IC, OC);
  }
  for (size_t i = 0; i < again.size(); ++i) EXPECT_NEAR(first[i], 2 * again[i], 1e-5f) << i;
}

// The attention's batched products follow the scope too: its output moves by about bf16's
// rounding (not 0, not more).
TEST(Matmul, AttentionRunsInBf16UnderTheScope) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const AttentionShape s{2, 16, 32, 4};
  const auto qkv = random_floats(static_cast<size_t>(s.B) * s.Tn * 3 * s.C, 9);
  const size_t out_n = static_cast<size_t>(s.B) * s.Tn * s.C;
  const size_t att_n = static_cast<size_t>(s.B) * s.H * s.Tn * s.Tn;
  std::vector<float> out32(out_n), out16(out_n), att(att_n);
  std::vector<float> scratch(attention_scratch_size(s, 64));
  attention_forward(out32.data(), att.data(), qkv.data(), nullptr, 0.0f, s, scratch.data(),
                    scratch.size());
  {
    MatmulPrecisionScope bf16(MatmulPrecision::kBF16);
    attention_forward(out16.data(), att.data(), qkv.data(), nullptr, 0.0f, s, scratch.data(),
                      scratch.size());
  }
  double worst = 0;
  for (size_t i = 0; i < out_n; ++i) worst = std::max(worst, double(std::abs(out32[i] - out16[i])));
  EXPECT_GT(worst, 1e-5);
  EXPECT_LT(worst, 0.05);
  EXPECT_EQ(matmul_precision(), MatmulPrecision::kF32);  // restored
}

// The precision is per thread: two threads whose scopes overlap (bf16 entered first, f32 second,
// left in the same order) each multiply in their own, and neither changes the caller's.
TEST(Matmul, ConcurrentScopesOnTwoThreadsEachKeepTheirOwnPrecision) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const int M = 16, N = 16, K = 64;
  const auto A = random_floats(static_cast<size_t>(M) * K, 31);
  const auto B = random_floats(static_cast<size_t>(K) * N, 32);
  auto product = [&] {
    std::vector<float> C(static_cast<size_t>(M) * N);
    matmul<float>(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
    return C;
  };
  std::vector<float> want32 = product(), want16;
  {
    MatmulPrecisionScope bf16(MatmulPrecision::kBF16);
    want16 = product();
  }
  ASSERT_NE(want16, want32);
  std::vector<float> got16, got32;
  MatmulPrecision seen16 = MatmulPrecision::kF32, seen32 = MatmulPrecision::kBF16;
  // Both scopes stay live until both threads have multiplied.
  std::latch bf16_entered(1), f32_entered(1), bf16_done(1);
  std::thread bf16_thread([&] {
    MatmulPrecisionScope bf16(MatmulPrecision::kBF16);
    bf16_entered.count_down();
    f32_entered.wait();
    got16 = product();
    seen16 = matmul_precision();
    bf16_done.count_down();
  });
  std::thread f32_thread([&] {
    bf16_entered.wait();
    MatmulPrecisionScope f32(MatmulPrecision::kF32);
    f32_entered.count_down();
    got32 = product();
    seen32 = matmul_precision();
    bf16_done.wait();
  });
  bf16_thread.join();
  f32_thread.join();
  EXPECT_EQ(got16, want16);
  EXPECT_EQ(seen16, MatmulPrecision::kBF16);
  EXPECT_EQ(got32, want32);
  EXPECT_EQ(seen32, MatmulPrecision::kF32);
  EXPECT_EQ(matmul_precision(), MatmulPrecision::kF32);
  EXPECT_EQ(product(), want32);
}

// OpenMP's worker threads run the attention's heads in the scope of the thread that called it:
// on 2 threads every head matches the 1-thread result (in f32 the worker's heads would differ).
TEST(Matmul, AttentionWorkerThreadsFollowTheCallersScope) {
  if (!bf16_matmul_available()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  const AttentionShape s{1, 128, 32, 4};  // B * H * T * T = 65536: worth threads
  const auto qkv = random_floats(static_cast<size_t>(s.B) * s.Tn * 3 * s.C, 33);
  const size_t out_n = static_cast<size_t>(s.B) * s.Tn * s.C;
  std::vector<float> att(static_cast<size_t>(s.B) * s.H * s.Tn * s.Tn);
  std::vector<float> scratch(attention_scratch_size(s, 2));
  auto forward = [&](int threads, MatmulPrecision p) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> out(out_n);
    {
      MatmulPrecisionScope scope(p);
      attention_forward(out.data(), att.data(), qkv.data(), nullptr, 0.0f, s, scratch.data(),
                        scratch.size());
    }
    omp_set_num_threads(saved);
    return out;
  };
  const auto one_thread = forward(1, MatmulPrecision::kBF16);
  ASSERT_NE(one_thread, forward(1, MatmulPrecision::kF32));
  EXPECT_EQ(forward(2, MatmulPrecision::kBF16), one_thread);
}

TEST(Matmul, Bf16FallsBackToF32WhenForced) {
  ASSERT_EQ(setenv("LOOM_BF16", "0", 1), 0);
  EXPECT_FALSE(bf16_matmul_available());
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(resolve_precision(MatmulPrecision::kBF16), MatmulPrecision::kF32);
  const std::string notice = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(notice.find("computing in f32 instead"), std::string::npos) << notice;
  EXPECT_EQ(resolve_precision(MatmulPrecision::kF32), MatmulPrecision::kF32);
  unsetenv("LOOM_BF16");
}

TEST(Matmul, ParsePrecisionNamesTheBadValue) {
  EXPECT_EQ(parse_precision("bf16", "--precision"), MatmulPrecision::kBF16);
  EXPECT_EQ(parse_precision("f32", "--precision"), MatmulPrecision::kF32);
  try {
    parse_precision("fp8", "--precision");
    FAIL() << "fp8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--precision: unknown precision \"fp8\""),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace loom::kernels
