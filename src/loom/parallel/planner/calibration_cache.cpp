#include "loom/parallel/planner/calibration_cache.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "loom/core/check.hpp"

namespace loom::planner {
namespace {

namespace fs = std::filesystem;
constexpr int kVersion = 1;

// /proc/cpuinfo's first "model name" ("unknown" elsewhere).
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

bool positive_number(const nlohmann::json& j) {
  return j.is_number() && std::isfinite(j.get<double>()) && j.get<double>() > 0;
}

bool kernel_seconds(const nlohmann::json& j, std::array<double, KernelProfile::kNum>& out) {
  if (!j.is_array() || j.size() != out.size()) return false;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!j[i].is_number() || !std::isfinite(j[i].get<double>()) || j[i].get<double>() < 0) return false;
    out[i] = j[i].get<double>();
  }
  return true;
}

// The entry's times, or why it is not one.
std::optional<KernelTimes> parse_entry(const nlohmann::json& e, const std::string& key,
                                       std::string* why) {
  KernelTimes t;
  const bool ok = e.is_object() && e.contains("threads") && e["threads"].is_number_integer() &&
                  e.contains("shape") && e["shape"].is_array() && e["shape"].size() == 4 &&
                  e.contains("forward_s") && kernel_seconds(e["forward_s"], t.forward_s) &&
                  e.contains("backward_s") && kernel_seconds(e["backward_s"], t.backward_s) &&
                  e.contains("step_s") && positive_number(e["step_s"]) &&
                  e.contains("adamw_s_per_param") && positive_number(e["adamw_s_per_param"]);
  if (!ok) {
    *why = "its entry \"" + key + "\" is not a calibration";
    return std::nullopt;
  }
  for (const auto& x : e["shape"])
    if (!x.is_number_integer() || x.get<int>() < 1) {
      *why = "its entry \"" + key + "\" has a bad shape";
      return std::nullopt;
    }
  t.threads = e["threads"].get<int>();
  t.d_model = e["shape"][0].get<int>();
  t.n_head = e["shape"][1].get<int>();
  t.vocab_size = e["shape"][2].get<int>();
  t.seq = e["shape"][3].get<int>();
  t.step_s = e["step_s"].get<double>();
  t.adamw_s_per_param = e["adamw_s_per_param"].get<double>();
  if (calibration_key(t) != key) {
    *why = "its entry \"" + key + "\" holds another shape";
    return std::nullopt;
  }
  return t;
}

// The cache's entries object, or why the file is not a cache.
std::optional<nlohmann::json> read_entries(const std::string& path, std::string* why) {
  std::ifstream in(path);
  if (!in) return nlohmann::json::object();  // no cache yet
  std::stringstream text;
  text << in.rdbuf();
  const auto j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded()) {
    *why = "it is not JSON";
    return std::nullopt;
  }
  if (!j.is_object() || j.value("version", 0) != kVersion || !j.contains("entries") ||
      !j["entries"].is_object()) {
    *why = "it is not a version " + std::to_string(kVersion) + " calibration cache";
    return std::nullopt;
  }
  return j["entries"];
}

}  // namespace

std::string calibration_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg == '/') return std::string(xdg) + "/loom/calibration.json";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return std::string(home) + "/.cache/loom/calibration.json";
  return "";
}

std::string calibration_key(const KernelTimes& t) {
  return detail::concat("cpu=", cpu_model(), "|threads=", t.threads, "|d_model=", t.d_model,
                        "|n_head=", t.n_head, "|vocab=", t.vocab_size, "|seq=", t.seq);
}

std::optional<KernelTimes> read_cached_times(const std::string& path, const std::string& key,
                                             std::string* warning) {
  std::string why;
  const auto entries = read_entries(path, &why);
  if (entries && !entries->contains(key)) return std::nullopt;
  std::optional<KernelTimes> t = entries ? parse_entry((*entries)[key], key, &why) : std::nullopt;
  if (!t) *warning = "ignoring the calibration cache " + path + ": " + why;
  return t;
}

std::string write_cached_times(const std::string& path, const std::string& key,
                               const KernelTimes& t) {
  std::string why;
  nlohmann::json entries = read_entries(path, &why).value_or(nlohmann::json::object());
  for (auto it = entries.begin(); it != entries.end();) {
    std::string bad;
    it = parse_entry(it.value(), it.key(), &bad) ? std::next(it) : entries.erase(it);
  }
  entries[key] = {{"threads", t.threads},
                  {"shape", {t.d_model, t.n_head, t.vocab_size, t.seq}},
                  {"forward_s", t.forward_s},
                  {"backward_s", t.backward_s},
                  {"step_s", t.step_s},
                  {"adamw_s_per_param", t.adamw_s_per_param}};
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = path + "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"version", kVersion}, {"entries", entries}}.dump(1) << '\n';
    if (!out.flush()) return "cannot write " + tmp;
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return "cannot replace " + path;
  }
  return "";
}

KernelTimes cached_kernel_times(const GPTConfig& model, int seq, int threads,
                                const std::string& cache_path, bool remeasure,
                                const std::function<void(const std::string&)>& note) {
  const KernelTimes shape = shape_to_time(model, seq, threads);
  const std::string key = calibration_key(shape);
  if (!cache_path.empty() && !remeasure) {
    std::string warning;
    if (auto cached = read_cached_times(cache_path, key, &warning)) {
      note("calibration of this machine read from " + cache_path);
      return *cached;
    }
    if (!warning.empty()) note("warning: " + warning);
  }
  note(detail::concat("calibrating: timing a 2-block model of width ", model.d_model, ", ",
                      model.n_head, " heads, vocabulary ", model.vocab_size, " on ", seq,
                      " tokens with ", threads, " thread(s)"));
  const KernelTimes t = time_kernels(model, seq, threads, kCalibrationSteps);
  if (!cache_path.empty()) {
    const std::string failed = write_cached_times(cache_path, key, t);
    note(failed.empty() ? "calibration cached in " + cache_path
                        : "warning: calibration not cached: " + failed);
  }
  return t;
}

}  // namespace loom::planner
