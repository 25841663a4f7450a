#pragma once
// The training loop's step line: which steps print it (--log_every n: every n-th step, the first
// and the last always) and the progress it ends with, " | 1m05s elapsed | ETA 12m30s", the ETA
// from this run's mean time per step so far (a resumed run counts only its own steps).
#include <cstdint>
#include <string>

namespace loom {

class StepProgress {
 public:
  // `first_step`: the steps done when this run started (its checkpoint's); `start_s`: the
  // elapsed seconds then (the clock every later call reads).
  StepProgress(int64_t first_step, double start_s, int64_t max_steps, int64_t log_every);

  // Whether the line of `step` (completed steps) is printed.
  bool prints(int64_t step) const;

  // " | <elapsed> elapsed | ETA <remaining>" after `step` with the clock at `now_s`.
  std::string suffix(int64_t step, double now_s) const;

 private:
  int64_t first_step_, max_steps_, log_every_;
  double start_s_;
};

// "42s", "3m05s", "2h07m", "3d04h": two units at most.
std::string format_duration(double seconds);

}  // namespace loom
