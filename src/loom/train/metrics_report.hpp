#pragma once
// `loom report`: reads a run's metrics.jsonl (see metrics_log.hpp) and draws train/val loss,
// learning rate and tokens/s against the step as one SVG (written directly: no plotting
// dependency), plus a text summary. A step logged twice (a restarted run repeats the steps lost
// since its checkpoint) counts once, with its last entry.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loom {

struct MetricsHistory {
  struct Train {
    double loss, lr, tokens_per_s, elapsed_s;
  };
  std::map<int64_t, Train> train;
  std::map<int64_t, std::pair<double, double>> eval;  // step -> (train loss, val loss)
  std::map<int64_t, double> save_stall_s;
};

// Reads a metrics.jsonl; errors name the file and line.
MetricsHistory read_metrics(const std::string& path);

// Axis ticks for values in [lo, hi]: multiples of a round step (1, 2 or 5 x 10^k) giving about
// `count` ticks, each with its label written from the integer multiple ("0.25", "1.5e-9", "1200":
// never 9.239 or -3.95e-05). `widen`: the first and last tick are the multiples just outside
// [lo, hi] (a value axis's ends); otherwise only the multiples inside it (a step axis). The
// step is at least `min_step` (1 for steps).
struct AxisTicks {
  double step = 1;
  std::vector<double> values;
  std::vector<std::string> labels;
};
AxisTicks round_ticks(double lo, double hi, int count, bool widen, double min_step = 0);

// The SVG document: three panels (loss, lr, tokens/s) over the same step axis.
std::string metrics_svg(const MetricsHistory& h, const std::string& title);

// Several lines: steps, losses (first, last, best val), throughput, checkpoint stalls.
std::string metrics_summary(const MetricsHistory& h);

}  // namespace loom
