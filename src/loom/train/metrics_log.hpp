#pragma once
// Metrics as JSON lines, one object per event, appended and flushed line by line so a crashed run
// keeps everything logged before the crash:
//   {"type": "train", "step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"}
//     (mixture-of-experts models add "aux_loss", "z_loss", "dropped_share", "max_over_mean_load":
//     the auxiliary losses times their coefficients, beside the cross-entropy `loss`)
//   {"type": "eval", "step", "train_loss", "val_loss"}
//   {"type": "save", "step", "stall_s"}   (how long the training loop waited for the save)
//   {"type": "ps_staleness", "step", "mode", "staleness", "update_staleness": {"0": n, ..},
//    "clock_staleness": {..}, "workers_lost": [ranks]}   (parameter servers: at the end of a run,
//    server 0's histograms of every applied gradient, see parallel/ps/staleness.hpp)
// `step` counts completed optimizer steps (1 after the first step).
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace loom {

class MetricsLog {
 public:
  MetricsLog() = default;  // logs nothing
  // Appends to `path` after dropping its entries of steps after `resumed_step` (those a resumed
  // run logs again: no step is logged twice) and any line cut short; errors name the path.
  MetricsLog(const std::string& path, int64_t resumed_step);
  // `extra`: more fields of the record (an object; the MoE fields above).
  void train(int64_t step, double loss, double lr, double grad_norm, double tokens_per_s,
             double elapsed_s, const nlohmann::json& extra = nlohmann::json::object());
  void eval(int64_t step, double train_loss, double val_loss);
  void save(int64_t step, double stall_s);
  // `fields` besides type and step (see above).
  void ps_staleness(int64_t step, const nlohmann::json& fields);

 private:
  void write(const nlohmann::json& j);
  std::string path_;
  std::ofstream out_;
};

// The largest "train" step in the metrics log at `path`; -1 when there is none (or no file).
// A restarted run compares it with its checkpoint's step: the difference is the steps lost.
int64_t last_logged_step(const std::string& path);

}  // namespace loom
