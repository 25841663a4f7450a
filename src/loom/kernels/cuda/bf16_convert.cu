#include "loom/kernels/cuda/launch.cuh"
#include "loom/kernels/cuda/matmul.hpp"

namespace loom::kernels::cuda {

namespace {
template <typename To, typename From>
__global__ void convert_kernel(To* dst, const From* src, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    dst[i] = from_float<To>(to_float(src[i]));
}
}  // namespace

void to_bf16(__nv_bfloat16* dst, const float* src, size_t n) {
  if (n == 0) return;
  convert_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(dst, src, n);
  LOOM_CUDA_LAUNCHED("to_bf16");
}

void to_f32(float* dst, const __nv_bfloat16* src, size_t n) {
  if (n == 0) return;
  convert_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(dst, src, n);
  LOOM_CUDA_LAUNCHED("to_f32");
}

}  // namespace loom::kernels::cuda
