#include "loom/kernels/cuda/launch.cuh"
#include "loom/kernels/cuda/residual.hpp"

namespace loom::kernels::cuda {

namespace {
template <typename T>
__global__ void residual_kernel(T* out, const T* a, const T* b, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}
}  // namespace

template <typename T>
void residual_forward(T* out, const T* a, const T* b, size_t n) {
  if (n == 0) return;
  residual_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(out, a, b, n);
  LOOM_CUDA_LAUNCHED("residual_forward");
}

template void residual_forward<float>(float*, const float*, const float*, size_t);
template void residual_forward<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*,
                                              const __nv_bfloat16*, size_t);

}  // namespace loom::kernels::cuda
