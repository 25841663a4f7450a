#include "loom/train/metrics_log.hpp"

#include <algorithm>
#include <filesystem>

#include "loom/core/check.hpp"

namespace loom {
namespace {

// Rewrites the log at `path` (if any) without the entries of steps after `step` and without
// lines that are not whole entries (a run killed in the middle of one), through a temporary file
// renamed over it: a crash leaves the old log or the new one.
void keep_steps_through(const std::string& path, int64_t step) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  const std::string tmp = path + ".truncating";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    LOOM_CHECK(out, tmp, ": cannot write");
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= step)
        out << line << '\n';
    }
    LOOM_CHECK(out.flush(), tmp, ": write failed");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, int64_t resumed_step) : path_(path) {
  keep_steps_through(path, resumed_step);
  out_.open(path, std::ios::app);
  LOOM_CHECK(out_, path, ": cannot open the metrics log for appending");
}

void MetricsLog::train(int64_t step, double loss, double lr, double grad_norm, double tokens_per_s,
                       double elapsed_s, const nlohmann::json& extra) {
  nlohmann::json j = {{"type", "train"}, {"step", step}, {"loss", loss}, {"lr", lr},
                      {"grad_norm", grad_norm}, {"tokens_per_s", tokens_per_s},
                      {"elapsed_s", elapsed_s}};
  j.update(extra);
  write(j);
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
