#include "loom/kernels/cpu/gemm_peak.hpp"

#include <algorithm>
#include <vector>

#include "loom/core/aligned_buffer.hpp"
#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"
#include "loom/kernels/cpu/gemm.hpp"

namespace loom::kernels {

GemmPeak measure_sgemm_peak(int n, int reps) {
  LOOM_CHECK(n > 0 && reps > 0, "sgemm peak: size and reps must be > 0, got ", n, " and ", reps);
  const size_t nn = static_cast<size_t>(n) * n;
  AlignedBuffer<float> a(nn), b(nn), c(nn);
  for (size_t i = 0; i < nn; ++i) {
    a.data()[i] = static_cast<float>(i % 7) * 0.01f;
    b.data()[i] = static_cast<float>(i % 5) * 0.01f;
    c.data()[i] = 0.0f;
  }
  auto product = [&] {
    gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  };
  product();
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    Timer t;
    product();
    rates.push_back(2.0 * n * nn / t.seconds() * 1e-9);
  }
  std::sort(rates.begin(), rates.end());
  return {n, reps, rates[rates.size() / 2], rates.back()};
}

}  // namespace loom::kernels
