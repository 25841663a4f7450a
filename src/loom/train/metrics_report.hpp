#pragma once
// `loom report`: reads a run's metrics.jsonl (see metrics_log.hpp) and draws train/val loss,
// learning rate and tokens/s against the step as one SVG (written directly: no plotting
// dependency), plus a text summary. A step logged twice (a restarted run repeats the steps lost
// since its checkpoint) counts once, with its last entry.
#include <cstdint>
#include <map>
#include <string>

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

// The SVG document: three panels (loss, lr, tokens/s) over the same step axis.
std::string metrics_svg(const MetricsHistory& h, const std::string& title);

// Several lines: steps, losses (first, last, best val), throughput, checkpoint stalls.
std::string metrics_summary(const MetricsHistory& h);

}  // namespace loom
