#include "loom/kernels/cuda/launch.cuh"
#include "loom/kernels/cuda/layernorm.hpp"

namespace loom::kernels::cuda {

namespace {
constexpr int kWarpsPerBlock = 8;
constexpr int kRowsPerChunk = 256;  // rows summed by one block of the dw/db partial pass

__global__ void forward_kernel(float* out, float* mean, float* rstd, const float* inp,
                               const float* w, const float* b, int N, int C) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* x = inp + static_cast<size_t>(row) * C;
  float s = 0;
  for (int c = lane; c < C; c += 32) s += x[c];
  const float m = warp_sum(s) / C;
  float v = 0;
  for (int c = lane; c < C; c += 32) v += (x[c] - m) * (x[c] - m);
  const float r = rsqrtf(warp_sum(v) / C + 1e-5f);
  float* o = out + static_cast<size_t>(row) * C;
  for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// dinp: one warp per row. dxhat = dout * w; dinp += rstd * (dxhat - mean(dxhat) - xhat *
// mean(dxhat * xhat)).
__global__ void dinp_kernel(float* dinp, const float* dout, const float* inp, const float* w,
                            const float* mean, const float* rstd, int N, int C) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const size_t off = static_cast<size_t>(row) * C;
  const float m = mean[row], r = rstd[row];
  float s1 = 0, s2 = 0;
  for (int c = lane; c < C; c += 32) {
    const float dxh = dout[off + c] * w[c];
    s1 += dxh;
    s2 += dxh * (inp[off + c] - m) * r;
  }
  s1 = warp_sum(s1) / C;
  s2 = warp_sum(s2) / C;
  for (int c = lane; c < C; c += 32) {
    const float xh = (inp[off + c] - m) * r;
    dinp[off + c] += r * (dout[off + c] * w[c] - s1 - xh * s2);
  }
}

// partial[chunk, 0:C] = sum over the chunk's rows of dout * xhat, partial[chunk, C:2C] = of dout.
__global__ void dwdb_partial_kernel(float* partial, const float* dout, const float* inp,
                                    const float* mean, const float* rstd, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int r0 = blockIdx.y * kRowsPerChunk, r1 = min(N, r0 + kRowsPerChunk);
  float dw = 0, db = 0;
  for (int n = r0; n < r1; ++n) {
    const size_t i = static_cast<size_t>(n) * C + c;
    dw += dout[i] * (inp[i] - mean[n]) * rstd[n];
    db += dout[i];
  }
  float* p = partial + static_cast<size_t>(blockIdx.y) * 2 * C;
  p[c] = dw;
  p[C + c] = db;
}

__global__ void dwdb_sum_kernel(float* dw, float* db, const float* partial, int chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sw = 0, sb = 0;
  for (int k = 0; k < chunks; ++k) {
    sw += partial[static_cast<size_t>(k) * 2 * C + c];
    sb += partial[static_cast<size_t>(k) * 2 * C + C + c];
  }
  dw[c] += sw;
  db[c] += sb;
}
}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                       const float* b, int N, int C) {
  if (N == 0) return;
  forward_kernel<<<(N + kWarpsPerBlock - 1) / kWarpsPerBlock, 32 * kWarpsPerBlock, 0,
                   compute_stream()>>>(out, mean, rstd, inp, w, b, N, C);
  LOOM_CUDA_LAUNCHED("layernorm_forward");
}

void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C) {
  if (N == 0) return;
  const cudaStream_t s = compute_stream();
  dinp_kernel<<<(N + kWarpsPerBlock - 1) / kWarpsPerBlock, 32 * kWarpsPerBlock, 0, s>>>(
      dinp, dout, inp, w, mean, rstd, N, C);
  LOOM_CUDA_LAUNCHED("layernorm_backward (dinp)");
  const int chunks = (N + kRowsPerChunk - 1) / kRowsPerChunk;
  device::cuda::DeviceArray<float> partial(static_cast<size_t>(chunks) * 2 * C);
  dwdb_partial_kernel<<<dim3((C + 127) / 128, chunks), 128, 0, s>>>(partial.data(), dout, inp, mean,
                                                                    rstd, N, C);
  LOOM_CUDA_LAUNCHED("layernorm_backward (dw, db partials)");
  dwdb_sum_kernel<<<(C + 127) / 128, 128, 0, s>>>(dw, db, partial.data(), chunks, C);
  LOOM_CUDA_LAUNCHED("layernorm_backward (dw, db)");
}

}  // namespace loom::kernels::cuda
