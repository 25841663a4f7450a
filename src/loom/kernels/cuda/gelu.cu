#include "loom/kernels/cuda/gelu.hpp"
#include "loom/kernels/cuda/launch.cuh"

namespace loom::kernels::cuda {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    const float x = to_float(inp[i]);
    const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
    out[i] = from_float<T>(0.5f * x * (1.0f + tanhf(u)));
  }
}

template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    const float x = to_float(inp[i]);
    const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
    const float th = tanhf(u);
    const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
    dinp[i] = from_float<T>(to_float(dout[i]) * grad);
  }
}
}  // namespace

template <typename T>
void gelu_forward(T* out, const T* inp, size_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(out, inp, n);
  LOOM_CUDA_LAUNCHED("gelu_forward");
}

template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, size_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(dinp, inp, dout, n);
  LOOM_CUDA_LAUNCHED("gelu_backward");
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*,
                                           const __nv_bfloat16*, size_t);

}  // namespace loom::kernels::cuda
