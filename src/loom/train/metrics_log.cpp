#include "loom/train/metrics_log.hpp"

#include "loom/core/check.hpp"

namespace loom {

MetricsLog::MetricsLog(const std::string& path) : path_(path), out_(path, std::ios::app) {
  LOOM_CHECK(out_, path, ": cannot open the metrics log for appending");
}

void MetricsLog::train(int64_t step, double loss, double lr, double grad_norm, double tokens_per_s,
                       double elapsed_s) {
  write({{"type", "train"}, {"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
         {"tokens_per_s", tokens_per_s}, {"elapsed_s", elapsed_s}});
}

void MetricsLog::eval(int64_t step, double train_loss, double val_loss) {
  write({{"type", "eval"}, {"step", step}, {"train_loss", train_loss}, {"val_loss", val_loss}});
}

void MetricsLog::write(const nlohmann::json& j) {
  if (path_.empty()) return;
  out_ << j.dump() << '\n' << std::flush;
  LOOM_CHECK(out_, path_, ": write failed");
}

}  // namespace loom
