#pragma once
// The seed's learning-rate schedule. For the 0-based step s of `total_steps`:
//   s <  warmup_steps: initial_lr + s * (peak_lr - initial_lr) / warmup_steps   (linear warm-up)
//   s >= warmup_steps: min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress)),
//                      progress = (s - warmup_steps) / (total_steps - warmup_steps)
// so the first step after warm-up runs at peak_lr and the cosine reaches min_lr at s = total_steps
// (the step after the last one); later steps stay at min_lr.
#include <cstdint>

namespace loom {

struct LrSchedule {
  float initial_lr = 0;
  float peak_lr = 0;
  float min_lr = 0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;

  // Throws loom::Error naming the field when the values cannot form a schedule.
  void validate() const;
  float at(int64_t step) const;
};

}  // namespace loom
