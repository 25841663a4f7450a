#include "loom/kernels/cuda/matmul_peak.hpp"

#include <algorithm>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/device/cuda/runtime.hpp"
#include "loom/kernels/cuda/matmul.hpp"

namespace loom::kernels::cuda {

namespace {

using device::cuda::compute_stream;
using device::cuda::DeviceArray;

// Event pair around one product on the compute stream; milliseconds.
template <typename F>
float time_ms(const F& product) {
  cudaEvent_t start, stop;
  LOOM_CUDA_CHECK(cudaEventCreate(&start));
  LOOM_CUDA_CHECK(cudaEventCreate(&stop));
  LOOM_CUDA_CHECK(cudaEventRecord(start, compute_stream()));
  product();
  LOOM_CUDA_CHECK(cudaEventRecord(stop, compute_stream()));
  LOOM_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  LOOM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms;
}

// Inputs filled with small non-zero values (zeros run measurably faster on tensor cores).
void fill(DeviceArray<float>& a, float value) {
  const std::vector<float> h(a.size(), value);
  device::cuda::copy_to_device(a.data(), h.data(), h.size() * sizeof(float));
}
void fill(DeviceArray<__nv_bfloat16>& a, float value) {
  DeviceArray<float> f32(a.size());
  fill(f32, value);
  to_bf16(a.data(), f32.data(), a.size());
}

template <typename T>
MatmulPeak measure(int n, int reps) {
  const size_t nn = static_cast<size_t>(n) * n;
  DeviceArray<T> A(nn), B(nn);
  DeviceArray<float> C(nn);
  fill(A, 0.01f);
  fill(B, 0.02f);
  auto product = [&] {
    matmul(false, false, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
  };
  product();
  product();
  std::vector<double> tflops;
  for (int r = 0; r < reps; ++r)
    tflops.push_back(2.0 * n * n * double(n) / (time_ms(product) * 1e9));
  std::sort(tflops.begin(), tflops.end());
  return {n, reps, tflops[tflops.size() / 2], tflops.back()};
}

}  // namespace

const char* peak_precision_name(PeakPrecision p) {
  return p == PeakPrecision::kBF16 ? "bf16" : p == PeakPrecision::kTF32 ? "tf32" : "f32";
}

MatmulPeak measure_matmul_peak(PeakPrecision p, int n, int reps) {
  LOOM_CHECK(n > 0 && reps > 0, "matmul peak: n and reps must be positive (n=", n, ", reps=", reps,
             ")");
  if (p == PeakPrecision::kBF16) return measure<__nv_bfloat16>(n, reps);
  F32MathScope math(p == PeakPrecision::kTF32 ? F32Math::kTF32 : F32Math::kExact);
  return measure<float>(n, reps);
}

}  // namespace loom::kernels::cuda
