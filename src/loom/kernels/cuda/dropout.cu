#include "loom/kernels/cuda/dropout.hpp"
#include "loom/kernels/cuda/dropout_hash.cuh"
#include "loom/kernels/cuda/launch.cuh"

namespace loom::kernels::cuda {

namespace {
__global__ void mask_kernel(uint8_t* mask, size_t n, uint64_t threshold, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    mask[i] = dropout_keep(seed, i, threshold) ? 1 : 0;
}

template <typename T>
__global__ void apply_kernel(T* out, const T* inp, const uint8_t* mask, float scale, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    out[i] = from_float<T>(mask[i] ? to_float(inp[i]) * scale : 0.0f);
}
}  // namespace

void dropout_mask(uint8_t* mask, size_t n, float p, uint64_t seed) {
  if (n == 0) return;
  mask_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(mask, n, dropout_threshold(p), seed);
  LOOM_CUDA_LAUNCHED("dropout_mask");
}

template <typename T>
void dropout_forward(T* out, const T* inp, const uint8_t* mask, float p, size_t n) {
  if (n == 0) return;
  apply_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(out, inp, mask, 1.0f / (1.0f - p),
                                                               n);
  LOOM_CUDA_LAUNCHED("dropout_forward");
}

template <typename T>
void dropout_backward(T* dinp, const T* dout, const uint8_t* mask, float p, size_t n) {
  dropout_forward(dinp, dout, mask, p, n);  // the map is diagonal: its transpose is itself
}

template void dropout_forward<float>(float*, const float*, const uint8_t*, float, size_t);
template void dropout_forward<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, const uint8_t*,
                                             float, size_t);
template void dropout_backward<float>(float*, const float*, const uint8_t*, float, size_t);
template void dropout_backward<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, const uint8_t*,
                                              float, size_t);

}  // namespace loom::kernels::cuda
