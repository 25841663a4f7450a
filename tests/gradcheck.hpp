#pragma once
// Finite-difference gradient checking in double precision, shared by the kernel and model tests.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "loom/core/rng.hpp"

namespace loom::test {

inline std::vector<double> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

// Largest relative error between analytic[i] and the finite-difference derivative of loss() with
// respect to x[i] (x is perturbed in place and restored). The five-point stencil has truncation
// error O(h^4), so h can be large enough (1e-3) that round-off in loss() stays ~1e-12. Entries
// where both values are below `floor` are compared against `floor`.
inline double max_rel_error(double* x, size_t n, const double* analytic,
                            const std::function<double()>& loss, double h = 1e-3,
                            double floor = 1e-4) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double saved = x[i];
    auto at = [&](double dx) {
      x[i] = saved + dx;
      return loss();
    };
    const double numeric = (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h);
    x[i] = saved;
    const double denom = std::max({std::abs(numeric), std::abs(analytic[i]), floor});
    worst = std::max(worst, std::abs(numeric - analytic[i]) / denom);
  }
  return worst;
}

// sum(a .* b): the scalar loss whose gradient with respect to `a` is b.
inline double dot(const double* a, const double* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Every gradient check asserts this bound on the relative error.
constexpr double kGradTolerance = 1e-6;

}  // namespace loom::test
