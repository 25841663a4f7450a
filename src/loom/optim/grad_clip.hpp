#pragma once
// Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_ without its epsilon, so a
// clipped gradient has norm max_norm up to float rounding).
//
// The sum of squares is split from the scaling so that, with sharded or data-parallel gradients,
// each rank sums its own range and the partial sums are all-reduced; the scale is then applied by
// AdamW::step (grad_scale), inside its single pass over the gradients.
#include <cstddef>
#include <cstdint>

namespace loom {

// Sum of g[i]^2 over [0, n) in double precision. Partial sums over fixed-size blocks are added in
// block order, so the result is bit-identical for every thread count.
double grad_sq_sum(const float* g, size_t n);
// The same sum with g[skip_begin, skip_end) left out: bit-identical to grad_sq_sum over a copy
// with those elements zeroed (the blocks stay where they are; adding nothing changes no sum).
double grad_sq_sum(const float* g, size_t n, size_t skip_begin, size_t skip_end);

// The factor that brings a gradient of norm `norm` down to max_norm (1 when norm <= max_norm).
float clip_scale(double norm, float max_norm);


// Whether the step with 0-based index `step` clips. The seed clips only after warm-up, i.e. for
// step > warmup_steps; clip_during_warmup makes every step clip.
bool clips_at(int64_t step, int64_t warmup_steps, bool clip_during_warmup);

}  // namespace loom
