#include "loom/kernels/cuda/embedding.hpp"
#include "loom/kernels/cuda/launch.cuh"

namespace loom::kernels::cuda {

namespace {
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte,
                                         const float* wpe, int Tn, int C, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    const size_t bt = i / C;
    const int c = static_cast<int>(i % C), t = static_cast<int>(bt % Tn);
    out[i] = wte[static_cast<size_t>(tokens[bt]) * C + c] + wpe[static_cast<size_t>(t) * C + c];
  }
}

// dwpe[t, c] += sum_b dout[b, t, c]: one thread per (t, c).
__global__ void wpe_backward_kernel(float* dwpe, const float* dout, int B, int Tn, int C) {
  const size_t n = static_cast<size_t>(Tn) * C;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    float s = 0;
    for (int b = 0; b < B; ++b) s += dout[static_cast<size_t>(b) * n + i];
    dwpe[i] += s;
  }
}

// dwte[tokens[n], c] += dout[n, c]: thread c walks all positions in order, so repeated tokens
// accumulate without races. Only C threads: slow for large B*T (a sorted-bucket version is the
// tuning step), but exact and deterministic.
__global__ void wte_backward_kernel(float* dwte, const float* dout, const int32_t* tokens, int N,
                                    int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (int n = 0; n < N; ++n)
    dwte[static_cast<size_t>(tokens[n]) * C + c] += dout[static_cast<size_t>(n) * C + c];
}
}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                       int Tn, int C) {
  const size_t n = static_cast<size_t>(B) * Tn * C;
  if (n == 0) return;
  embedding_forward_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(out, tokens, wte, wpe,
                                                                           Tn, C, n);
  LOOM_CUDA_LAUNCHED("embedding_forward");
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int Tn, int C) {
  if (static_cast<size_t>(B) * Tn * C == 0) return;
  wpe_backward_kernel<<<grid_for(static_cast<size_t>(Tn) * C), kThreads, 0, compute_stream()>>>(
      dwpe, dout, B, Tn, C);
  LOOM_CUDA_LAUNCHED("embedding_backward (wpe)");
  wte_backward_kernel<<<(C + 127) / 128, 128, 0, compute_stream()>>>(dwte, dout, tokens, B * Tn, C);
  LOOM_CUDA_LAUNCHED("embedding_backward (wte)");
}

}  // namespace loom::kernels::cuda
