#pragma once
// Helpers for the end-to-end `loom train` tests: run the real binary (bounded in time), write tiny
// byte-level shards and a config, read the metrics log and checkpoints back.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loom/data/token_shard.hpp"
#include "loom/io/safetensors.hpp"
#include "temp_dir.hpp"

namespace loom::testing {

struct Result {
  int rc;
  std::string out;
};

// Runs `command` (a shell command line) with stdout and stderr captured; after timeout_s it is
// stopped (SIGTERM, then SIGKILL 5 s later) and the result has rc 124 or 137.
inline Result run_bounded(const std::string& command, int timeout_s = 120) {
  const std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 5 " +
                          std::to_string(timeout_s) + " " + command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, "popen failed: " + cmd};
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// `loom <args>`.
inline Result loom_cli(const std::string& args, int timeout_s = 120) {
  return run_bounded(std::string(LOOM_BINARY) + " " + args, timeout_s);
}

// `mpirun -np <np> loom <args>` (Open MPI, oversubscribed: the tests run on small machines).
inline Result mpirun_cli(int np, const std::string& args, int timeout_s = 120) {
  return run_bounded("mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(np) + " " +
                         LOOM_BINARY + " " + args,
                     timeout_s);
}

inline bool have_mpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

// Byte-level shards of `text` repeated (train) and a little of it (val), and a config.
inline std::string make_run(const TempDir& dir, const std::string& text, int repeats,
                            const nlohmann::json& train_overrides = nlohmann::json::object()) {
  namespace fs = std::filesystem;
  const std::string data = dir / "data";
  fs::create_directories(data);
  std::vector<uint16_t> ids;
  for (int r = 0; r < repeats; ++r)
    for (unsigned char ch : text) ids.push_back(ch);
  write_shard(data + "/tiny_train_000000.bin", ids);
  write_shard(data + "/tiny_val_000000.bin", std::vector<uint16_t>(ids.begin(), ids.begin() + 4 * text.size()));
  std::ofstream(data + "/meta.json") << R"({"tokenizer": "byte"})";
  nlohmann::json cfg = {
      {"model", {{"vocab_size", 257}, {"context_len", 32}, {"n_layer", 2}, {"n_head", 2}, {"d_model", 32}}},
      {"train",
       {{"data_dir", data}, {"out_dir", dir / "out"}, {"batch_size", 4}, {"seq_len", 32}, {"max_steps", 20},
        {"lr", 3e-3}, {"initial_lr", 3e-4}, {"min_lr", 3e-4}, {"warmup_steps", 5}, {"eval_freq", 10},
        {"eval_iter", 2}, {"save_freq", 10}, {"sample_tokens", 8}, {"sample_prompt", "the "},
        {"threads", 1}}}};
  cfg["train"].update(train_overrides);
  const std::string path = dir / "config.json";
  std::ofstream(path) << cfg.dump(2);
  return path;
}

inline std::map<int64_t, double> train_losses(const std::string& metrics) {
  std::map<int64_t, double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

// ||a - b|| / ||b|| over all F32 tensors of two safetensors files with the same tensors.
inline double relative_error(const std::string& a_path, const std::string& b_path) {
  const auto a = SafetensorsFile::load(a_path), b = SafetensorsFile::load(b_path);
  double diff = 0, norm = 0;
  for (const auto& [name, e] : b.tensors()) {
    if (e.dtype != "F32") continue;
    const auto xa = a.data(name), xb = b.data(name);
    if (xa.size() != xb.size()) return INFINITY;
    for (size_t i = 0; i + 4 <= xb.size(); i += 4) {
      float fa, fb;
      std::memcpy(&fa, xa.data() + i, 4);
      std::memcpy(&fb, xb.data() + i, 4);
      diff += (static_cast<double>(fa) - fb) * (static_cast<double>(fa) - fb);
      norm += static_cast<double>(fb) * fb;
    }
  }
  return std::sqrt(diff / norm);
}

}  // namespace loom::testing
