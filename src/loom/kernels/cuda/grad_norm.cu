#include "loom/kernels/cuda/grad_norm.hpp"
#include "loom/kernels/cuda/launch.cuh"

namespace loom::kernels::cuda {

namespace {
constexpr int kSqBlock = 256;
constexpr size_t kSqChunk = size_t{1} << 16;  // elements per partial sum

__global__ void sq_partial_kernel(double* partial, const float* g, size_t n) {
  __shared__ double shared[kSqBlock];
  const size_t lo = blockIdx.x * kSqChunk, hi = min(n, lo + kSqChunk);
  double s = 0;
  for (size_t i = lo + threadIdx.x; i < hi; i += kSqBlock) s += static_cast<double>(g[i]) * g[i];
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int stride = kSqBlock / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}

__global__ void sq_total_kernel(double* total, const double* partial, size_t blocks) {
  double s = 0;
  for (size_t b = 0; b < blocks; ++b) s += partial[b];
  *total = s;
}
}  // namespace

double grad_sq_sum(const float* g, size_t n) {
  if (n == 0) return 0;
  const size_t blocks = (n + kSqChunk - 1) / kSqChunk;
  device::cuda::DeviceArray<double> partial(blocks + 1);  // last element: the total
  sq_partial_kernel<<<static_cast<unsigned>(blocks), kSqBlock, 0, compute_stream()>>>(
      partial.data(), g, n);
  LOOM_CUDA_LAUNCHED("grad_sq_sum (partials)");
  sq_total_kernel<<<1, 1, 0, compute_stream()>>>(partial.data() + blocks, partial.data(), blocks);
  LOOM_CUDA_LAUNCHED("grad_sq_sum (total)");
  double total = 0;
  device::cuda::copy_to_host_sync(&total, partial.data() + blocks, sizeof total);
  return total;
}

}  // namespace loom::kernels::cuda
