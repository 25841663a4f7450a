#include "loom/core/check.hpp"
#include "loom/kernels/cuda/attention.hpp"
#include "loom/kernels/cuda/dropout_hash.cuh"
#include "loom/kernels/cuda/launch.cuh"

namespace loom::kernels::cuda {

namespace {

constexpr int kFwdTile = 64;  // query rows per block = key rows per shared-memory tile (forward)
constexpr int kBwdTile = 32;  // the same for the two backward kernels (their tiles are padded)

struct Geometry {
  int Tn, C, H, C3;
  float scale;  // 1 / sqrt(hs)
  uint64_t keep_threshold;
  float drop_scale;  // 1 / (1 - p)
  bool dropout;
  uint64_t seed;
};

// Dropout factor of probability (bh, i, j): 1 without dropout, else 0 or 1/(1-p).
__device__ inline float keep_factor(const Geometry& g, int bh, int i, int j) {
  if (!g.dropout) return 1.0f;
  const uint64_t index = (static_cast<uint64_t>(bh) * g.Tn + i) * g.Tn + j;
  return dropout_keep(g.seed, index, g.keep_threshold) ? g.drop_scale : 0.0f;
}

// Loads rows [r0, r0 + rows) of one head's (T, hs) slice of a (B, T, ld) tensor into
// tile[rows][stride] (rows past T are zero), all threads of the block cooperating.
template <int HS>
__device__ inline void load_tile(float* tile, int stride, const float* src, int ld, int r0,
                                 int rows, int Tn) {
  for (int idx = threadIdx.x; idx < rows * HS; idx += blockDim.x) {
    const int r = idx / HS, d = idx % HS;
    tile[r * stride + d] = r0 + r < Tn ? src[static_cast<size_t>(r0 + r) * ld + d] : 0.0f;
  }
}

// s = q . k (the unscaled score) and dp = dO . v (the gradient of the dropped probability),
// the two products the backward recomputes for every (query, key) pair.
template <int HS>
__device__ inline void two_dots(float& s, const float* q, const float* k, float& dp,
                                const float* dO, const float* v) {
  s = 0.0f;
  dp = 0.0f;
#pragma unroll
  for (int d = 0; d < HS; ++d) {
    s += q[d] * k[d];
    dp += dO[d] * v[d];
  }
}

// grid (ceil(T / kFwdTile), B*H), kFwdTile threads: thread = one query row i, which keeps q_i
// and its output accumulator in registers and streams the keys 0..i through shared memory with
// an online softmax (running max m, running sum l).
template <int HS>
__global__ void forward_kernel(float* out, float* lse, const float* qkv, Geometry g) {
  __shared__ float ks[kFwdTile * HS];
  __shared__ float vs[kFwdTile * HS];
  const int bh = blockIdx.y, b = bh / g.H, h = bh % g.H;
  const int i = blockIdx.x * kFwdTile + threadIdx.x;
  const float* base = qkv + static_cast<size_t>(b) * g.Tn * g.C3 + h * HS;
  float q[HS], o[HS];
  float m = -INFINITY, l = 0.0f;
  if (i < g.Tn) {
#pragma unroll
    for (int d = 0; d < HS; ++d) {
      q[d] = base[static_cast<size_t>(i) * g.C3 + d] * g.scale;
      o[d] = 0.0f;
    }
  }
  const int last_key = min(g.Tn, (blockIdx.x + 1) * kFwdTile) - 1;
  for (int j0 = 0; j0 <= last_key; j0 += kFwdTile) {
    __syncthreads();
    load_tile<HS>(ks, HS, base + g.C, g.C3, j0, kFwdTile, g.Tn);
    load_tile<HS>(vs, HS, base + 2 * g.C, g.C3, j0, kFwdTile, g.Tn);
    __syncthreads();
    if (i >= g.Tn) continue;
    const int j1 = min(j0 + kFwdTile, i + 1);
    for (int j = j0; j < j1; ++j) {
      const float* k = ks + (j - j0) * HS;
      float s = 0.0f;
#pragma unroll
      for (int d = 0; d < HS; ++d) s += q[d] * k[d];
      if (s > m) {  // new running max: rescale what was accumulated under the old one
        const float corr = expf(m - s);
        l *= corr;
#pragma unroll
        for (int d = 0; d < HS; ++d) o[d] *= corr;
        m = s;
      }
      const float pr = expf(s - m);
      l += pr;  // the normaliser counts every probability, dropped or not
      const float pd = pr * keep_factor(g, bh, i, j);
      const float* v = vs + (j - j0) * HS;
#pragma unroll
      for (int d = 0; d < HS; ++d) o[d] += pd * v[d];
    }
  }
  if (i >= g.Tn) return;
  float* dst = out + (static_cast<size_t>(b) * g.Tn + i) * g.C + h * HS;
  const float inv = 1.0f / l;
#pragma unroll
  for (int d = 0; d < HS; ++d) dst[d] = o[d] * inv;
  lse[static_cast<size_t>(bh) * g.Tn + i] = m + logf(l);
}

// D[bh, i] = dout_i . out_i (= sum_j P_ij dP_ij, the softmax backward's row term, dropout
// included). One thread per (b, h, i).
template <int HS>
__global__ void row_dot_kernel(float* D, const float* dout, const float* out, int B, Geometry g) {
  const size_t n = static_cast<size_t>(B) * g.H * g.Tn;
  for (size_t r = blockIdx.x * size_t{blockDim.x} + threadIdx.x; r < n;
       r += size_t{gridDim.x} * blockDim.x) {
    const int i = static_cast<int>(r % g.Tn), bh = static_cast<int>(r / g.Tn);
    const int b = bh / g.H, h = bh % g.H;
    const size_t off = (static_cast<size_t>(b) * g.Tn + i) * g.C + h * HS;
    float s = 0.0f;
#pragma unroll
    for (int d = 0; d < HS; ++d) s += dout[off + d] * out[off + d];
    D[r] = s;
  }
}

// grid (ceil(T / kBwdTile), B*H), kBwdTile threads: thread = one key j, accumulating dk_j and
// dv_j in registers over the queries i >= j, which stream through shared memory.
//   P_ij = exp(s_ij - lse_i), s_ij = q_i . k_j / sqrt(hs);  Pd_ij = P_ij * keep_ij
//   dv_j = sum_i Pd_ij dout_i;  dS_ij = P_ij (keep_ij dout_i . v_j - D_i) / sqrt(hs)
//   dk_j = sum_i dS_ij q_i
template <int HS>
__global__ void dkdv_kernel(float* dqkv, const float* qkv, const float* dout, const float* lse,
                            const float* D, Geometry g) {
  constexpr int kPad = HS + 1;  // own rows padded: thread t reads row t without bank conflicts
  __shared__ float kown[kBwdTile * kPad], vown[kBwdTile * kPad];
  __shared__ float qs[kBwdTile * HS], dos[kBwdTile * HS], lses[kBwdTile], Ds[kBwdTile];
  const int bh = blockIdx.y, b = bh / g.H, h = bh % g.H;
  const int j0 = blockIdx.x * kBwdTile, j = j0 + threadIdx.x;
  const size_t head = static_cast<size_t>(b) * g.Tn * g.C3 + h * HS;
  const float* dout_head = dout + static_cast<size_t>(b) * g.Tn * g.C + h * HS;
  load_tile<HS>(kown, kPad, qkv + head + g.C, g.C3, j0, kBwdTile, g.Tn);
  load_tile<HS>(vown, kPad, qkv + head + 2 * g.C, g.C3, j0, kBwdTile, g.Tn);
  float dk[HS], dv[HS];
#pragma unroll
  for (int d = 0; d < HS; ++d) dk[d] = dv[d] = 0.0f;
  const float* k = kown + threadIdx.x * kPad;
  const float* v = vown + threadIdx.x * kPad;
  for (int i0 = j0; i0 < g.Tn; i0 += kBwdTile) {
    __syncthreads();
    load_tile<HS>(qs, HS, qkv + head, g.C3, i0, kBwdTile, g.Tn);
    load_tile<HS>(dos, HS, dout_head, g.C, i0, kBwdTile, g.Tn);
    if (threadIdx.x < kBwdTile && i0 + threadIdx.x < g.Tn) {
      lses[threadIdx.x] = lse[static_cast<size_t>(bh) * g.Tn + i0 + threadIdx.x];
      Ds[threadIdx.x] = D[static_cast<size_t>(bh) * g.Tn + i0 + threadIdx.x];
    }
    __syncthreads();
    if (j >= g.Tn) continue;
    const int i1 = min(i0 + kBwdTile, g.Tn);
    for (int i = max(i0, j); i < i1; ++i) {
      const float* q = qs + (i - i0) * HS;
      const float* dO = dos + (i - i0) * HS;
      float s, dp;
      two_dots<HS>(s, q, k, dp, dO, v);
      const float pr = expf(s * g.scale - lses[i - i0]);
      const float kf = keep_factor(g, bh, i, j);
      const float ds = g.scale * pr * (kf * dp - Ds[i - i0]);
      const float pd = pr * kf;
#pragma unroll
      for (int d = 0; d < HS; ++d) {
        dv[d] += pd * dO[d];
        dk[d] += ds * q[d];
      }
    }
  }
  if (j >= g.Tn) return;
  float* dst = dqkv + head + static_cast<size_t>(j) * g.C3;
#pragma unroll
  for (int d = 0; d < HS; ++d) {
    dst[g.C + d] = dk[d];
    dst[2 * g.C + d] = dv[d];
  }
}

// grid (ceil(T / kBwdTile), B*H), kBwdTile threads: thread = one query i, accumulating
// dq_i = sum_{j <= i} dS_ij k_j over keys streamed through shared memory.
template <int HS>
__global__ void dq_kernel(float* dqkv, const float* qkv, const float* dout, const float* lse,
                          const float* D, Geometry g) {
  constexpr int kPad = HS + 1;
  __shared__ float qown[kBwdTile * kPad], doown[kBwdTile * kPad];
  __shared__ float ks[kBwdTile * HS], vs[kBwdTile * HS];
  const int bh = blockIdx.y, b = bh / g.H, h = bh % g.H;
  const int i0 = blockIdx.x * kBwdTile, i = i0 + threadIdx.x;
  const size_t head = static_cast<size_t>(b) * g.Tn * g.C3 + h * HS;
  load_tile<HS>(qown, kPad, qkv + head, g.C3, i0, kBwdTile, g.Tn);
  load_tile<HS>(doown, kPad, dout + static_cast<size_t>(b) * g.Tn * g.C + h * HS, g.C, i0, kBwdTile,
                g.Tn);
  float dq[HS];
#pragma unroll
  for (int d = 0; d < HS; ++d) dq[d] = 0.0f;
  const bool active = i < g.Tn;
  const float li = active ? lse[static_cast<size_t>(bh) * g.Tn + i] : 0.0f;
  const float Di = active ? D[static_cast<size_t>(bh) * g.Tn + i] : 0.0f;
  const float* q = qown + threadIdx.x * kPad;
  const float* dO = doown + threadIdx.x * kPad;
  const int last_key = min(g.Tn, i0 + kBwdTile) - 1;
  for (int j0 = 0; j0 <= last_key; j0 += kBwdTile) {
    __syncthreads();
    load_tile<HS>(ks, HS, qkv + head + g.C, g.C3, j0, kBwdTile, g.Tn);
    load_tile<HS>(vs, HS, qkv + head + 2 * g.C, g.C3, j0, kBwdTile, g.Tn);
    __syncthreads();
    if (!active) continue;
    const int j1 = min(j0 + kBwdTile, i + 1);
    for (int j = j0; j < j1; ++j) {
      const float* k = ks + (j - j0) * HS;
      const float* v = vs + (j - j0) * HS;
      float s, dp;
      two_dots<HS>(s, q, k, dp, dO, v);
      const float pr = expf(s * g.scale - li);
      const float ds = g.scale * pr * (keep_factor(g, bh, i, j) * dp - Di);
#pragma unroll
      for (int d = 0; d < HS; ++d) dq[d] += ds * k[d];
    }
  }
  if (!active) return;
  float* dst = dqkv + head + static_cast<size_t>(i) * g.C3;
#pragma unroll
  for (int d = 0; d < HS; ++d) dst[d] = dq[d];
}

Geometry geometry(const AttentionShape& s, float p, uint64_t seed) {
  LOOM_CHECK(s.B > 0 && s.Tn > 0 && s.H > 0 && s.C % s.H == 0, "attention: bad shape B=", s.B,
             " T=", s.Tn, " C=", s.C, " H=", s.H);
  LOOM_CHECK(p >= 0 && p < 1, "attention: dropout p must be in [0, 1), got ", p);
  Geometry g{};
  g.Tn = s.Tn;
  g.C = s.C;
  g.H = s.H;
  g.C3 = 3 * s.C;
  g.scale = 1.0f / sqrtf(static_cast<float>(s.C / s.H));
  g.dropout = p > 0;
  g.keep_threshold = dropout_threshold(p);
  g.drop_scale = 1.0f / (1.0f - p);
  g.seed = seed;
  return g;
}

// Calls f(std::integral_constant<int, HS>) for the compiled head sizes.
template <typename F>
void with_head_size(int hs, const F& f) {
  switch (hs) {
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    default: LOOM_FAIL("cuda attention: head size ", hs, " is not compiled (32 or 64)");
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, float p, uint64_t seed,
                       const AttentionShape& s) {
  const Geometry g = geometry(s, p, seed);
  with_head_size(s.C / s.H, [&](auto hs) {
    const dim3 grid((s.Tn + kFwdTile - 1) / kFwdTile, s.B * s.H);
    forward_kernel<hs.value><<<grid, kFwdTile, 0, compute_stream()>>>(out, lse, qkv, g);
    LOOM_CUDA_LAUNCHED("attention_forward");
  });
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, float p, uint64_t seed, const AttentionShape& s) {
  const Geometry g = geometry(s, p, seed);
  device::cuda::DeviceArray<float> D(static_cast<size_t>(s.B) * s.H * s.Tn);
  with_head_size(s.C / s.H, [&](auto hs) {
    const cudaStream_t st = compute_stream();
    row_dot_kernel<hs.value><<<grid_for(D.size()), kThreads, 0, st>>>(D.data(), dout, out, s.B, g);
    LOOM_CUDA_LAUNCHED("attention_backward (row dots)");
    const dim3 grid((s.Tn + kBwdTile - 1) / kBwdTile, s.B * s.H);
    dkdv_kernel<hs.value><<<grid, kBwdTile, 0, st>>>(dqkv, qkv, dout, lse, D.data(), g);
    LOOM_CUDA_LAUNCHED("attention_backward (dk, dv)");
    dq_kernel<hs.value><<<grid, kBwdTile, 0, st>>>(dqkv, qkv, dout, lse, D.data(), g);
    LOOM_CUDA_LAUNCHED("attention_backward (dq)");
  });
}

}  // namespace loom::kernels::cuda
