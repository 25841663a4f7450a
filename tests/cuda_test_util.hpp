#pragma once
// Shared by tests/cuda_*_test.cpp: every test that needs a GPU starts with
// LOOM_SKIP_WITHOUT_GPU(), which makes ctest report it as skipped (with the reason) on machines
// without one. Device results are compared with the CPU twin run in double precision on the
// same (float-representable) inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/device/device.hpp"

#define LOOM_SKIP_WITHOUT_GPU()                                                \
  do {                                                                         \
    const std::string loom_no_gpu = ::loom::device::cuda_unavailable_reason(); \
    if (!loom_no_gpu.empty()) GTEST_SKIP() << "no GPU: " << loom_no_gpu;       \
  } while (0)

#ifdef LOOM_WITH_CUDA
#include <cuda_bf16.h>

#include "loom/device/cuda/runtime.hpp"

namespace loom::test {

// Normal(0, scale) values rounded to float, as double (the CPU reference) and float (the GPU).
struct Inputs {
  std::vector<double> d;
  std::vector<float> f;
};
inline Inputs random_inputs(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Inputs in{std::vector<double>(n), std::vector<float>(n)};
  for (size_t i = 0; i < n; ++i) {
    in.f[i] = static_cast<float>(scale * rng.normal());
    in.d[i] = in.f[i];
  }
  return in;
}

template <typename T>
device::cuda::DeviceArray<T> to_device(const std::vector<T>& h) {
  device::cuda::DeviceArray<T> d(h.size());
  device::cuda::copy_to_device(d.data(), h.data(), h.size() * sizeof(T));
  return d;
}

template <typename T>
std::vector<T> to_host(const device::cuda::DeviceArray<T>& d) {
  std::vector<T> h(d.size());
  device::cuda::copy_to_host_sync(h.data(), d.data(), d.size() * sizeof(T));
  return h;
}

inline std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& v) {
  std::vector<__nv_bfloat16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __float2bfloat16(v[i]);
  return out;
}
inline std::vector<float> from_bf16(const std::vector<__nv_bfloat16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __bfloat162float(v[i]);
  return out;
}

// Normwise relative error max_i |got_i - want_i| / max_i |want_i| (a per-element ratio would
// be dominated by entries that are zero up to cancellation).
template <typename G>
double normwise_error(const std::vector<G>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

constexpr double kF32Tolerance = 1e-5;
// bf16 keeps 8 significant bits: one rounding is <= 2^-9 relative; a few in a row, 1e-2.
constexpr double kBF16Tolerance = 1e-2;

}  // namespace loom::test
#endif
