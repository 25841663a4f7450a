#pragma once
// Gradient norm on device memory: the twin of loom::grad_sq_sum (optim/grad_clip.hpp); clipping
// itself is the grad_scale of adamw_update.
#include <cstddef>

namespace loom::kernels::cuda {

// Sum of g[i]^2 over [0, n) in double: per-block partial sums added in block order, so the
// result does not depend on scheduling. Waits for the compute stream (the host needs the norm
// for the clipping factor and the metrics).
double grad_sq_sum(const float* g, size_t n);

}  // namespace loom::kernels::cuda
