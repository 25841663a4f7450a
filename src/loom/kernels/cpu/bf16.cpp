#include "loom/kernels/cpu/bf16.hpp"

#include "loom/kernels/cpu/parallel.hpp"

namespace loom::kernels {

void convert_to_bf16(bf16* dst, const float* src, size_t rows, size_t cols, size_t ld,
                     size_t dst_ld) {
  if (dst_ld == 0) dst_ld = cols;
  // Called both from the main thread (weights, activations: threads help) and from inside the
  // attention's per-head parallel loop (nested regions run on the calling thread).
#pragma omp parallel for schedule(static) if (worth_threads(rows * cols))
  for (size_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    bf16* d = dst + r * dst_ld;
#pragma omp simd
    for (size_t c = 0; c < cols; ++c) d[c] = to_bf16(s[c]);
  }
}

}  // namespace loom::kernels
