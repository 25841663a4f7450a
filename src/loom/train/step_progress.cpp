#include "loom/train/step_progress.hpp"

#include <cmath>
#include <cstdio>

#include "loom/core/check.hpp"

namespace loom {

StepProgress::StepProgress(int64_t first_step, double start_s, int64_t max_steps, int64_t log_every)
    : first_step_(first_step), max_steps_(max_steps), log_every_(log_every), start_s_(start_s) {
  LOOM_CHECK(log_every >= 1, "log_every must be >= 1, got ", log_every);
}

bool StepProgress::prints(int64_t step) const {
  return step == first_step_ + 1 || step == max_steps_ || step % log_every_ == 0;
}

std::string StepProgress::suffix(int64_t step, double now_s) const {
  const double run_s = now_s - start_s_;
  const int64_t done = step - first_step_;
  std::string s = " | " + format_duration(now_s) + " elapsed";
  if (done > 0 && step < max_steps_)
    s += " | ETA " + format_duration(run_s / static_cast<double>(done) *
                                     static_cast<double>(max_steps_ - step));
  return s;
}

std::string format_duration(double seconds) {
  const long long s = std::llround(std::max(0.0, seconds));
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else if (s < 86400)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  else
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
  return buf;
}

}  // namespace loom
