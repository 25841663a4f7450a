#include "loom/kernels/cuda/launch.cuh"
#include "loom/kernels/cuda/softmax_ce.hpp"

namespace loom::kernels::cuda {

namespace {
constexpr int kBlock = 512;

__global__ void forward_kernel(float* losses, float* lse, const float* logits,
                               const int32_t* targets, int V) {
  __shared__ float shared[32];
  const float* row = logits + static_cast<size_t>(blockIdx.x) * V;
  float mx = -INFINITY;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, row[v]);
  mx = block_max(mx, shared);
  float s = 0;
  for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(row[v] - mx);
  s = block_sum(s, shared);
  if (threadIdx.x == 0) {
    const float l = mx + logf(s);
    lse[blockIdx.x] = l;
    losses[blockIdx.x] = l - row[targets[blockIdx.x]];
  }
}

__global__ void backward_kernel(float* dlogits, const float* logits, const float* lse,
                                const int32_t* targets, float dloss, int V) {
  const size_t off = static_cast<size_t>(blockIdx.x) * V;
  const float l = lse[blockIdx.x];
  const int target = targets[blockIdx.x];
  for (int v = threadIdx.x; v < V; v += blockDim.x)
    dlogits[off + v] = (expf(logits[off + v] - l) - (v == target ? 1.0f : 0.0f)) * dloss;
}
}  // namespace

void softmax_ce_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                        int N, int V) {
  if (N == 0) return;
  forward_kernel<<<N, kBlock, 0, compute_stream()>>>(losses, lse, logits, targets, V);
  LOOM_CUDA_LAUNCHED("softmax_ce_forward");
}

void softmax_ce_backward(float* dlogits, const float* logits, const float* lse,
                         const int32_t* targets, float dloss, int N, int V) {
  if (N == 0) return;
  backward_kernel<<<N, kBlock, 0, compute_stream()>>>(dlogits, logits, lse, targets, dloss, V);
  LOOM_CUDA_LAUNCHED("softmax_ce_backward");
}

}  // namespace loom::kernels::cuda
