#include "loom/optim/lr_schedule.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

namespace loom {

void LrSchedule::validate() const {
  LOOM_CHECK(total_steps > 0, "max_steps must be > 0, got ", total_steps);
  LOOM_CHECK(warmup_steps >= 0 && warmup_steps < total_steps,
             "warmup_steps must be in [0, max_steps) = [0, ", total_steps, "), got ", warmup_steps);
  LOOM_CHECK(peak_lr > 0, "lr must be > 0, got ", peak_lr);
  LOOM_CHECK(initial_lr >= 0 && initial_lr <= peak_lr, "initial_lr must be in [0, lr = ", peak_lr,
             "], got ", initial_lr);
  LOOM_CHECK(min_lr >= 0 && min_lr <= peak_lr, "min_lr must be in [0, lr = ", peak_lr, "], got ",
             min_lr);
}

float LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) {
    const double inc = (static_cast<double>(peak_lr) - initial_lr) / static_cast<double>(warmup_steps);
    return static_cast<float>(initial_lr + static_cast<double>(step) * inc);
  }
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps) /
                        static_cast<double>(total_steps - warmup_steps));
  return static_cast<float>(min_lr + (static_cast<double>(peak_lr) - min_lr) * 0.5 *
                                         (1.0 + std::cos(M_PI * progress)));
}

}  // namespace loom
