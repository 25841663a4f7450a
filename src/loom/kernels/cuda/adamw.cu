#include <cmath>

#include "loom/kernels/cuda/adamw.hpp"
#include "loom/kernels/cuda/launch.cuh"

namespace loom::kernels::cuda {

namespace {
__global__ void adamw_kernel(float* p, const float* gr, float* m, float* v, size_t n, float lr,
                             float b1, float b2, float eps, float wd, float inv_c1, float inv_c2,
                             float grad_scale) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    const float g = gr[i] * grad_scale;
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi * inv_c1, vhat = vi * inv_c2;
    p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
  }
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n,
                  const AdamWStep& s) {
  if (n == 0) return;
  // Bias corrections exactly as the CPU AdamW computes them (double pow, then float).
  const float inv_c1 =
      1.0f / (1.0f - static_cast<float>(std::pow(static_cast<double>(s.beta1), s.t)));
  const float inv_c2 =
      1.0f / (1.0f - static_cast<float>(std::pow(static_cast<double>(s.beta2), s.t)));
  adamw_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(
      params, grads, m, v, n, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, inv_c1, inv_c2,
      s.grad_scale);
  LOOM_CUDA_LAUNCHED("adamw_update");
}

}  // namespace loom::kernels::cuda
