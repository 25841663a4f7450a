#pragma once
// The AdamW update on device memory: the per-element pass of loom::AdamW::step (optim/adamw.hpp,
// which defines the math) for one contiguous segment with one weight-decay setting. The caller
// (a device-side AdamW owning m and v on the GPU) walks the same segments as the CPU class.
#include <cstddef>
#include <cstdint>

namespace loom::kernels::cuda {

struct AdamWStep {
  float lr;
  float beta1, beta2, eps;
  float weight_decay;    // 0 for segments without decay
  int64_t t;             // step number after this update (1 for the first)
  float grad_scale = 1;  // clipping factor, applied to the gradient in the same pass
};

// params[n], m[n], v[n] updated in place from grads[n].
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n,
                  const AdamWStep& s);

}  // namespace loom::kernels::cuda
