#include "loom/kernels/cpu/layernorm.hpp"
#include "loom/kernels/cpu/parallel.hpp"

#include <omp.h>

#include <cmath>
#include <cstddef>
#include <vector>

namespace loom::kernels {

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int N,
                       int C) {
#pragma omp parallel for schedule(static) if (worth_threads(static_cast<size_t>(N) * C))
  for (int n = 0; n < N; ++n) {
    const T* x = inp + static_cast<size_t>(n) * C;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; ++c) s += x[c];
    const T m = s / C;
    T v = 0;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    const T r = T(1) / std::sqrt(v / C + T(1e-5));
    T* o = out + static_cast<size_t>(n) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = (x[c] - m) * r * w[c] + b[c];
    mean[n] = m;
    rstd[n] = r;
  }
}

template <typename T>
void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w,
                        const T* mean, const T* rstd, int N, int C) {
  // dw/db partial sums per thread (static schedule), then reduced in thread order: the result
  // is deterministic for a given thread count.
  const int nt = omp_get_max_threads();
  std::vector<T> partial(static_cast<size_t>(nt) * 2 * C, T(0));
#pragma omp parallel num_threads(nt) if (worth_threads(static_cast<size_t>(N) * C))
  {
    T* pdw = partial.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * C;
    T* pdb = pdw + C;
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n) {
      const T* x = inp + static_cast<size_t>(n) * C;
      const T* d = dout + static_cast<size_t>(n) * C;
      T* dx = dinp + static_cast<size_t>(n) * C;
      const T m = mean[n], r = rstd[n];
      // dxhat = dout * w; dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
      T sum_dxhat = 0, sum_dxhat_xhat = 0;
#pragma omp simd reduction(+ : sum_dxhat, sum_dxhat_xhat)
      for (int c = 0; c < C; ++c) {
        const T xhat = (x[c] - m) * r;
        const T dxhat = d[c] * w[c];
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * xhat;
      }
      const T a = sum_dxhat / C, bb = sum_dxhat_xhat / C;
#pragma omp simd
      for (int c = 0; c < C; ++c) {
        const T xhat = (x[c] - m) * r;
        pdw[c] += d[c] * xhat;
        pdb[c] += d[c];
        dx[c] += r * (d[c] * w[c] - a - xhat * bb);
      }
    }
  }
  for (int t = 0; t < nt; ++t) {
    const T* p = partial.data() + static_cast<size_t>(t) * 2 * C;
    for (int c = 0; c < C; ++c) {
      dw[c] += p[c];
      db[c] += p[C + c];
    }
  }
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, int, int);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*,
                                        const double*, int, int);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, int, int);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, int, int);

}  // namespace loom::kernels
