#include "loom/kernels/cpu/attention.hpp"
#include "loom/kernels/cpu/parallel.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "loom/core/check.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/kernels/cpu/vec_math.hpp"

namespace loom::kernels {

size_t attention_scratch_size(const AttentionShape& s, int threads) {
  return static_cast<size_t>(threads) * 2 * s.Tn * s.Tn;
}

namespace {

// Causal structure: query rows [r0, r0 + kRowBlock) attend to keys [0, r0 + kRowBlock) only, so
// the GEMMs run per row block over that prefix (for T = 256: 62.5% of the full square's work).
constexpr int kRowBlock = 64;

// P_drop = P * mask / (1-p) for one head's (T, T) block.
template <typename T>
void apply_dropout(T* dst, const T* src, const uint8_t* mask, float p, size_t n) {
  const T scale = T(1) / (T(1) - T(p));
#pragma omp simd
  for (size_t i = 0; i < n; ++i) dst[i] = mask[i] ? src[i] * scale : T(0);
}

void check_scratch(const AttentionShape& s, size_t scratch_size) {
  LOOM_CHECK(scratch_size >= attention_scratch_size(s, omp_get_max_threads()),
             "attention scratch too small for ", omp_get_max_threads(), " threads");
}

// This thread's two (T, T) scratch blocks (check_scratch verified the size for max_threads).
template <typename T>
T* thread_scratch(T* scratch, const AttentionShape& s) {
  return scratch + static_cast<size_t>(omp_get_thread_num()) * 2 * s.Tn * s.Tn;
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* att, const T* qkv, const uint8_t* mask, float p,
                       const AttentionShape& s, T* scratch, size_t scratch_size) {
  const int Tn = s.Tn, C = s.C, H = s.H, hs = C / H, C3 = 3 * C;
  const T scale = T(1) / std::sqrt(T(hs));
  const size_t TT = static_cast<size_t>(Tn) * Tn;
  check_scratch(s, scratch_size);
  // Under bf16, q, k and v are rounded once for all heads (the row blocks' products read
  // overlapping prefixes of k and v); the other threads read this thread's copy.
  const RoundedOnce<T> qkv_r(qkv, s.B * Tn, C3, C3);
  BlasSingleThreaded one_blas_thread;
  const MatmulMode mode = matmul_mode();
#pragma omp parallel if (worth_threads(static_cast<size_t>(s.B) * H * TT))
  {
    const AdoptMatmulMode adopt(mode);  // the heads' products follow the caller's scope
    T* pd = thread_scratch(scratch, s);
#pragma omp for schedule(static)
    for (int bh = 0; bh < s.B * H; ++bh) {
      const int b = bh / H, h = bh % H;
      // q, k, v of head h: (T, hs) each, row stride 3C
      const RoundedView<T> q = qkv_r.at(static_cast<size_t>(b) * Tn, h * hs);
      const RoundedView<T> k = q.at(0, C), v = q.at(0, 2 * C);
      T* P = att + bh * TT;
      // S = scale * q k^T, by row blocks: rows [r0, r1) need only columns [0, r1).
      for (int r0 = 0; r0 < Tn; r0 += kRowBlock) {
        const int r1 = std::min(Tn, r0 + kRowBlock);
        matmul<T>(false, true, r1 - r0, r1, hs, scale, q.at(r0, 0), k, T(0),
                  P + static_cast<size_t>(r0) * Tn, Tn);
      }
      for (int t = 0; t < Tn; ++t) {
        T* row = P + static_cast<size_t>(t) * Tn;
        T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
        for (int j = 0; j <= t; ++j) mx = row[j] > mx ? row[j] : mx;
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j <= t; ++j) {
          row[j] = exp_nonpos<T>(row[j] - mx);
          sum += row[j];
        }
        const T inv = T(1) / sum;
#pragma omp simd
        for (int j = 0; j <= t; ++j) row[j] *= inv;
        for (int j = t + 1; j < Tn; ++j) row[j] = T(0);
      }
      const T* Pd = P;
      if (mask != nullptr) {
        apply_dropout(pd, P, mask + bh * TT, p, TT);
        Pd = pd;
      }
      // out_h (T, hs) = Pd (T, T) @ v (T, hs); rows [r0, r1) of Pd are 0 beyond column r1.
      T* o = out + static_cast<size_t>(b) * Tn * C + h * hs;
      for (int r0 = 0; r0 < Tn; r0 += kRowBlock) {
        const int r1 = std::min(Tn, r0 + kRowBlock);
        matmul<T>(false, false, r1 - r0, hs, r1, T(1), Pd + static_cast<size_t>(r0) * Tn, Tn, v,
                  T(0), o + static_cast<size_t>(r0) * C, C);
      }
    }
  }
}

template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* att, const uint8_t* mask,
                        float p, const AttentionShape& s, T* scratch, size_t scratch_size) {
  const int Tn = s.Tn, C = s.C, H = s.H, hs = C / H, C3 = 3 * C;
  const T scale = T(1) / std::sqrt(T(hs));
  const size_t TT = static_cast<size_t>(Tn) * Tn;
  check_scratch(s, scratch_size);
  // Under bf16, q, k, v and dout are rounded once for all heads and row blocks.
  const RoundedOnce<T> qkv_r(qkv, s.B * Tn, C3, C3);
  const RoundedOnce<T> dout_r(dout, s.B * Tn, C, C);
  BlasSingleThreaded one_blas_thread;
  const MatmulMode mode = matmul_mode();
#pragma omp parallel if (worth_threads(static_cast<size_t>(s.B) * H * TT))
  {
    const AdoptMatmulMode adopt(mode);
    T* dP = thread_scratch(scratch, s);
    T* pd = dP + TT;
#pragma omp for schedule(static)
    for (int bh = 0; bh < s.B * H; ++bh) {
      const int b = bh / H, h = bh % H;
      // q, k, v, dq, dk, dv of head h: (T, hs) each, row stride 3C; dO (T, hs), row stride C
      const RoundedView<T> q = qkv_r.at(static_cast<size_t>(b) * Tn, h * hs);
      const RoundedView<T> k = q.at(0, C), v = q.at(0, 2 * C);
      T* dq = dqkv + static_cast<size_t>(b) * Tn * C3 + h * hs;
      T* dk = dq + C;
      T* dv = dq + 2 * C;
      const RoundedView<T> dO = dout_r.at(static_cast<size_t>(b) * Tn, h * hs);
      const T* P = att + bh * TT;
      const uint8_t* m = mask ? mask + bh * TT : nullptr;
      const T* Pd = P;
      if (m != nullptr) {
        apply_dropout(pd, P, m, p, TT);
        Pd = pd;
      }
      // Row blocks from the last one down: block [r0, r1) touches columns [0, r1) only, and the
      // first block processed spans all T columns, so it initialises dv and dk (beta = 0) and
      // the later, narrower blocks accumulate.
      for (int r0 = (Tn - 1) / kRowBlock * kRowBlock; r0 >= 0; r0 -= kRowBlock) {
        const int r1 = std::min(Tn, r0 + kRowBlock), rows = r1 - r0;
        const T beta = r1 == Tn ? T(0) : T(1);
        const T* Pd_r = Pd + static_cast<size_t>(r0) * Tn;
        const RoundedView<T> dO_r = dO.at(r0, 0);
        T* dP_r = dP + static_cast<size_t>(r0) * Tn;
        // dv[0:r1] (+)= Pd[r0:r1, 0:r1]^T @ dO[r0:r1];  dPd[r0:r1, 0:r1] = dO[r0:r1] @ v[0:r1]^T
        matmul<T>(true, false, r1, hs, rows, T(1), Pd_r, Tn, dO_r, beta, dv, C3);
        matmul<T>(false, true, rows, r1, hs, T(1), dO_r, v, T(0), dP_r, Tn);
      }
      if (m != nullptr) apply_dropout(dP, dP, m, p, TT);
      // Softmax backward, with the 1/sqrt(hs) of S folded in:
      // dS[t,j] = scale * P[t,j] * (dP[t,j] - sum_j' P[t,j'] dP[t,j'])
      for (int t = 0; t < Tn; ++t) {
        const T* prow = P + static_cast<size_t>(t) * Tn;
        T* drow = dP + static_cast<size_t>(t) * Tn;
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j <= t; ++j) dot += prow[j] * drow[j];
#pragma omp simd
        for (int j = 0; j <= t; ++j) drow[j] = scale * prow[j] * (drow[j] - dot);
        for (int j = t + 1; j < Tn; ++j) drow[j] = T(0);
      }
      for (int r0 = (Tn - 1) / kRowBlock * kRowBlock; r0 >= 0; r0 -= kRowBlock) {
        const int r1 = std::min(Tn, r0 + kRowBlock), rows = r1 - r0;
        const T beta = r1 == Tn ? T(0) : T(1);
        // Both products read dS[r0:r1, 0:r1]: under bf16, this thread rounds it once.
        const RoundedOnce<T> dS_r(dP + static_cast<size_t>(r0) * Tn, rows, r1, Tn);
        // dq[r0:r1] = dS[r0:r1, 0:r1] @ k[0:r1];  dk[0:r1] (+)= dS[r0:r1, 0:r1]^T @ q[r0:r1]
        matmul<T>(false, false, rows, hs, r1, T(1), dS_r, k, T(0),
                  dq + static_cast<size_t>(r0) * C3, C3);
        matmul<T>(true, false, r1, hs, rows, T(1), dS_r, q.at(r0, 0), beta, dk, C3);
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, const uint8_t*, float,
                                       const AttentionShape&, float*, size_t);
template void attention_forward<double>(double*, double*, const double*, const uint8_t*, float,
                                        const AttentionShape&, double*, size_t);
template void attention_backward<float>(float*, const float*, const float*, const float*,
                                        const uint8_t*, float, const AttentionShape&, float*,
                                        size_t);
template void attention_backward<double>(double*, const double*, const double*, const double*,
                                         const uint8_t*, float, const AttentionShape&, double*,
                                         size_t);

}  // namespace loom::kernels
