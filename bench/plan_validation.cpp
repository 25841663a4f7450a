#include "bench/plan_validation.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "bench/bench_job.hpp"
#include "loom/core/check.hpp"
#include "loom/launch/launcher.hpp"

namespace loom::planner {
namespace {

int parse_count(const std::string& item, const std::string& text, const std::string& flag) {
  char* end = nullptr;
  const long x = std::strtol(item.c_str(), &end, 10);
  LOOM_CHECK(!item.empty() && *end == '\0' && x >= 1, flag, ": '", text,
             "' is not a layout DPxTPxPP[:schedule[:micro_batches]] of positive integers, e.g. "
             "2x1x1 or 1x1x2:1f1b:4");
  return static_cast<int>(x);
}

// "a,b," -> {"a", "b", ""}; "" -> {""}.
std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, sep);) out.push_back(item);
  if (text.empty() || text.back() == sep) out.emplace_back();
  return out;
}

// While it lives, this process's stdout and stderr go to a file (the launcher forwards the
// ranks' output to them).
class OutputToFile {
 public:
  explicit OutputToFile(const std::string& path) {
    std::cout.flush();
    std::fflush(nullptr);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    LOOM_CHECK(fd >= 0, path, ": cannot create the log of a validation run");
    out_ = ::dup(1);
    err_ = ::dup(2);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~OutputToFile() {
    std::cout.flush();
    std::fflush(nullptr);
    ::dup2(out_, 1);
    ::dup2(err_, 2);
    ::close(out_);
    ::close(err_);
  }
  OutputToFile(const OutputToFile&) = delete;
  OutputToFile& operator=(const OutputToFile&) = delete;

 private:
  int out_ = -1, err_ = -1;
};

std::string tail(const std::string& path, size_t max_chars) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  return s.size() <= max_chars ? s : "..." + s.substr(s.size() - max_chars);
}

}  // namespace

std::vector<Layout> parse_layouts(const std::string& text, int world, const std::string& flag) {
  std::vector<Layout> out;
  for (const std::string& item : split(text, ',')) {
    const std::vector<std::string> parts = split(item, ':');
    const std::vector<std::string> dims = split(parts.at(0), 'x');
    LOOM_CHECK(dims.size() == 3 && parts.size() <= 3, flag, ": '", item,
               "' is not a layout DPxTPxPP[:schedule[:micro_batches]], e.g. 2x1x1 or 1x1x2:1f1b:4");
    Layout L;
    L.dp = parse_count(dims[0], item, flag);
    L.tp = parse_count(dims[1], item, flag);
    L.pp = parse_count(dims[2], item, flag);
    LOOM_CHECK(L.dp * L.tp * L.pp == world, flag, ": '", item, "' has ", L.dp * L.tp * L.pp,
               " ranks, --nproc is ", world);
    if (parts.size() > 1) L.schedule = pipeline::parse_schedule_kind(parts[1]);
    LOOM_CHECK(L.schedule != pipeline::ScheduleKind::Interleaved, flag, ": '", item,
               "': loom train does not run interleaved schedules");
    L.micro_batches = parts.size() > 2 ? parse_count(parts[2], item, flag) : L.pp;
    out.push_back(L);
  }
  LOOM_CHECK(!out.empty(), flag, ": no layouts given");
  return out;
}

std::vector<Prediction> pick_layouts(const std::vector<Prediction>& ranked, int count) {
  // Per mesh shape, its trainable predictions in plan() order.
  std::map<std::tuple<int, int, int>, std::vector<const Prediction*>> by_shape;
  std::vector<std::tuple<int, int, int>> shapes;  // in the order of their best prediction
  for (const Prediction& p : ranked) {
    const auto key = std::make_tuple(p.layout.dp, p.layout.tp, p.layout.pp);
    if (by_shape[key].empty()) shapes.push_back(key);
    by_shape[key].push_back(&p);
  }
  std::vector<Prediction> out;
  for (size_t round = 0; static_cast<int>(out.size()) < count; ++round) {
    bool any = false;
    for (const auto& key : shapes) {
      const auto& list = by_shape[key];
      if (round >= list.size() || static_cast<int>(out.size()) == count) continue;
      out.push_back(*list[round]);
      any = true;
    }
    if (!any) break;
  }
  return out;
}

std::vector<std::string> layout_train_args(const PlanRequest& req, const Layout& L,
                                           const ValidationRun& run, const std::string& out_dir) {
  LOOM_CHECK(req.global_batch % L.dp == 0, "plan --validate: global batch ", req.global_batch,
             " is not divisible by dp ", L.dp);
  std::vector<std::string> a = {"--config",       run.config,
                                "--out_dir",      out_dir,
                                "--nproc",        std::to_string(req.world),
                                "--parallel",     "manual",
                                "--tp",           std::to_string(L.tp),
                                "--pp",           std::to_string(L.pp),
                                "--batch_size",   std::to_string(req.global_batch / L.dp),
                                "--grad_accum",   "1",
                                "--seq_len",      std::to_string(req.seq),
                                "--max_steps",    std::to_string(run.steps),
                                "--warmup_steps", "0",
                                "--eval_freq",    "0",
                                "--sample_freq",  "-1",
                                "--save_freq",    "0",
                                "--log_file",     "metrics.jsonl",
                                "--threads",      std::to_string(run.threads),
                                "--recompute",    recompute_name(run.recompute),
                                "--zero",         std::to_string(req.zero),
                                "--bucket_mb",    detail::concat(req.bucket_mb)};
  if (L.pp > 1)
    a.insert(a.end(), {"--schedule", pipeline::name(L.schedule), "--micro_batches",
                       std::to_string(L.micro_batches), "--virtual_stages",
                       std::to_string(L.virtual_stages)});
  if (!run.data_dir.empty()) a.insert(a.end(), {"--data_dir", run.data_dir});
  return a;
}

double median_step_seconds(const std::string& metrics, int first_step, double tokens_per_step) {
  std::ifstream in(metrics);
  LOOM_CHECK(in, metrics, ": no metrics log");
  std::vector<double> seconds;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("type", "") != "train") continue;
    if (j.value("step", 0) < first_step) continue;
    const double tps = j.value("tokens_per_s", 0.0);
    if (tps > 0) seconds.push_back(tokens_per_step / tps);
  }
  LOOM_CHECK(!seconds.empty(), metrics, ": no training steps from step ", first_step);
  return parallel::median(seconds);
}

double measure_layout(const PlanRequest& req, const Layout& L, const ValidationRun& run,
                      const std::string& name, const std::string& program) {
  namespace fs = std::filesystem;
  LOOM_CHECK(run.steps >= 3, "--steps must be >= 3 (the first two warm up), got ", run.steps);
  const std::string dir = (fs::path(run.out_dir) / name).string();
  const std::string log = dir + ".log";
  fs::remove_all(dir);
  fs::create_directories(run.out_dir);
  std::vector<std::string> args = {"train"};
  for (const auto& a : layout_train_args(req, L, run, dir)) args.push_back(a);
  launch::LaunchOptions lo;
  lo.program = program;
  int rc = 0;
  {
    OutputToFile quiet(log);
    rc = launch::launch_local(req.world, args, lo);
  }
  LOOM_CHECK(rc == 0, "plan --validate: training ", L.describe(), " failed (exit code ", rc,
             "); its output (", log, "):\n", tail(log, 3000));
  return median_step_seconds(dir + "/metrics.jsonl", 3,
                             static_cast<double>(req.global_batch) * req.seq);
}

std::string validation_table(const std::vector<ValidationRow>& rows,
                             const ValidationRow* baseline) {
  char line[200];
  std::snprintf(line, sizeof line, "%-36s %12s %12s %8s%s\n", "layout", "predicted_s", "measured_s",
                "error", baseline ? "  speedup pred   meas" : "");
  std::string s = line;
  double sum_abs = 0;
  int within = 0;
  for (const auto& r : rows) {
    const double err = r.predicted_s / r.measured_s - 1;
    sum_abs += std::abs(err);
    within += std::abs(err) <= 0.15;
    std::snprintf(line, sizeof line, "%-36s %12.4f %12.4f %+7.1f%%", r.layout.describe().c_str(),
                  r.predicted_s, r.measured_s, 100 * err);
    s += line;
    if (baseline) {
      std::snprintf(line, sizeof line, "  %12.2f %6.2f", baseline->predicted_s / r.predicted_s,
                    baseline->measured_s / r.measured_s);
      s += line;
    }
    s += "\n";
  }
  if (!rows.empty()) {
    std::snprintf(
        line, sizeof line,
        "mean |error| %.1f%%; within 15%%: %d of %zu (error = predicted / measured - 1)\n",
        100 * sum_abs / rows.size(), within, rows.size());
    s += line;
  }
  return s;
}

}  // namespace loom::planner
