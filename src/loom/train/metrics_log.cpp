#include "loom/train/metrics_log.hpp"

#include <algorithm>

#include "loom/core/check.hpp"

namespace loom {

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  // A run killed in the middle of a line leaves it unterminated: end it, so the lines a resumed
  // run appends stay lines of their own.
  std::ifstream old(path, std::ios::binary | std::ios::ate);
  const bool unterminated = old && old.tellg() > 0 && (old.seekg(-1, std::ios::end), old.get() != '\n');
  out_.open(path, std::ios::app);
  LOOM_CHECK(out_, path, ": cannot open the metrics log for appending");
  if (unterminated) out_ << '\n';
}

void MetricsLog::train(int64_t step, double loss, double lr, double grad_norm, double tokens_per_s,
                       double elapsed_s) {
  write({{"type", "train"}, {"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
         {"tokens_per_s", tokens_per_s}, {"elapsed_s", elapsed_s}});
}

void MetricsLog::eval(int64_t step, double train_loss, double val_loss) {
  write({{"type", "eval"}, {"step", step}, {"train_loss", train_loss}, {"val_loss", val_loss}});
}

void MetricsLog::save(int64_t step, double stall_s) {
  write({{"type", "save"}, {"step", step}, {"stall_s", stall_s}});
}

void MetricsLog::ps_staleness(int64_t step, const nlohmann::json& fields) {
  nlohmann::json j = {{"type", "ps_staleness"}, {"step", step}};
  j.update(fields);
  write(j);
}

void MetricsLog::write(const nlohmann::json& j) {
  if (path_.empty()) return;
  out_ << j.dump() << '\n' << std::flush;
  LOOM_CHECK(out_, path_, ": write failed");
}

int64_t last_logged_step(const std::string& path) {
  std::ifstream in(path);
  int64_t last = -1;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("type", "") == "train" && j.contains("step") && j["step"].is_number_integer())
      last = std::max(last, j["step"].get<int64_t>());
  }
  return last;
}

}  // namespace loom
