#include "loom/kernels/cuda/launch.cuh"
#include "loom/kernels/cuda/linear.hpp"
#include "loom/kernels/cuda/matmul.hpp"

namespace loom::kernels::cuda {

namespace {
constexpr int kRowsPerChunk = 256;  // rows summed by one block of the bias-gradient pass

// out[n, c] += bias[c]
__global__ void add_bias_kernel(float* out, const float* bias, size_t n, int OC) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    out[i] += bias[i % OC];
}

// partial[chunk, c] = sum of dout[n, c] over the chunk's rows.
__global__ void column_partial_kernel(float* partial, const float* dout, int N, int OC) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= OC) return;
  const int r0 = blockIdx.y * kRowsPerChunk, r1 = min(N, r0 + kRowsPerChunk);
  float s = 0;
  for (int n = r0; n < r1; ++n) s += dout[static_cast<size_t>(n) * OC + c];
  partial[static_cast<size_t>(blockIdx.y) * OC + c] = s;
}

// acc[c] += sum over chunks of partial[chunk, c], in chunk order.
__global__ void column_total_kernel(float* acc, const float* partial, int chunks, int OC) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= OC) return;
  float s = 0;
  for (int k = 0; k < chunks; ++k) s += partial[static_cast<size_t>(k) * OC + c];
  acc[c] += s;
}
}  // namespace

void linear_forward(float* out, const float* inp, const float* w, const float* bias, int N, int IC,
                    int OC) {
  matmul(false, false, N, OC, IC, 1.0f, inp, IC, w, OC, 0.0f, out, OC);
  if (bias == nullptr || N == 0) return;
  const size_t n = static_cast<size_t>(N) * OC;
  add_bias_kernel<<<grid_for(n), kThreads, 0, compute_stream()>>>(out, bias, n, OC);
  LOOM_CUDA_LAUNCHED("linear_forward (bias)");
}

void linear_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                     const float* w, int N, int IC, int OC) {
  if (dinp != nullptr) matmul(false, true, N, IC, OC, 1.0f, dout, OC, w, OC, 0.0f, dinp, IC);
  matmul(true, false, IC, OC, N, 1.0f, inp, IC, dout, OC, 1.0f, dw, OC);
  if (dbias == nullptr || N == 0) return;
  const int chunks = (N + kRowsPerChunk - 1) / kRowsPerChunk;
  device::cuda::DeviceArray<float> partial(static_cast<size_t>(chunks) * OC);
  column_partial_kernel<<<dim3((OC + 127) / 128, chunks), 128, 0, compute_stream()>>>(
      partial.data(), dout, N, OC);
  LOOM_CUDA_LAUNCHED("linear_backward (bias partials)");
  column_total_kernel<<<(OC + 127) / 128, 128, 0, compute_stream()>>>(dbias, partial.data(), chunks,
                                                                      OC);
  LOOM_CUDA_LAUNCHED("linear_backward (bias)");
}

void lm_head_forward(float* logits, const float* x, const float* wte, int N, int C, int V) {
  matmul(false, true, N, V, C, 1.0f, x, C, wte, C, 0.0f, logits, V);
}

void lm_head_backward(float* dx, float* dwte, const float* dlogits, const float* x,
                      const float* wte, int N, int C, int V) {
  matmul(false, false, N, C, V, 1.0f, dlogits, V, wte, C, 0.0f, dx, C);
  matmul(true, false, V, C, N, 1.0f, dlogits, V, x, C, 1.0f, dwte, C);
}

}  // namespace loom::kernels::cuda
