#include "loom/kernels/cpu/gemm_peak.hpp"

#include <algorithm>
#include <vector>

#include "loom/core/aligned_buffer.hpp"
#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"

namespace loom::kernels {

GemmRate measure_gemm(MatmulBackend backend, MatmulPrecision precision, const GemmShape& s,
                      int reps) {
  LOOM_CHECK(s.M > 0 && s.N > 0 && s.K > 0 && reps > 0,
             "gemm benchmark: sizes and reps must be > 0");
  const size_t a_n = static_cast<size_t>(s.M) * s.K, b_n = static_cast<size_t>(s.K) * s.N,
               c_n = static_cast<size_t>(s.M) * s.N;
  AlignedBuffer<float> a(a_n), b(b_n), c(c_n);
  for (size_t i = 0; i < a_n; ++i) a.data()[i] = static_cast<float>(i % 7) * 0.01f;
  for (size_t i = 0; i < b_n; ++i) b.data()[i] = static_cast<float>(i % 5) * 0.01f;
  std::fill(c.data(), c.data() + c_n, 0.0f);
  // Stored layouts: A [M,K] or [K,M], B [K,N] or [N,K].
  const int lda = s.trans_a ? s.M : s.K, ldb = s.trans_b ? s.K : s.N;
  auto product = [&] {
    matmul_with(backend, precision, s.trans_a, s.trans_b, s.M, s.N, s.K, 1.0f, a.data(), lda,
                b.data(), ldb, 0.0f, c.data(), s.N);
  };
  product();
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    Timer t;
    product();
    rates.push_back(2.0 * s.M * s.N * static_cast<double>(s.K) / t.seconds() * 1e-9);
  }
  std::sort(rates.begin(), rates.end());
  return {s, reps, rates[rates.size() / 2], rates.back()};
}

GemmRate measure_gemm_peak(MatmulPrecision precision, int n, int reps) {
  const MatmulBackend backend =
      precision == MatmulPrecision::kBF16 ? MatmulBackend::kOneDNN : f32_backend();
  return measure_gemm(backend, precision, {n, n, n}, reps);
}

}  // namespace loom::kernels
