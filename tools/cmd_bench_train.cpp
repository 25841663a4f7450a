// `loom bench train`: training throughput (forward + backward), MFU and per-kernel breakdown.
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command_registry.hpp"
#include "device_option.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/train/train_bench.hpp"

namespace {
struct Options {
  std::string config;
  loom::TrainBenchOptions bench;
  int threads = 0;
};

loom::GPTConfig read_model_config(const std::string& path) {
  std::ifstream f(path);
  LOOM_CHECK(f, "cannot open config file ", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    LOOM_FAIL(path, ": invalid JSON: ", e.what());
  }
  LOOM_CHECK(j.is_object() && j.contains("model"), path, ": no \"model\" section");
  try {
    loom::GPTConfig c = j.at("model").get<loom::GPTConfig>();
    c.validate();
    return c;
  } catch (const loom::Error& e) {
    LOOM_FAIL(path, ": ", e.what());
  }
}
}  // namespace

static const bool registered = loom::cli::register_command(
    "bench train", "Measure training throughput (forward + backward), MFU and kernel times",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      loom::cli::add_device_option(app, "bench train");
      app.add_option("--config", o->config, "config file (its \"model\" section is used)")
          ->required();
      app.add_option("--batch", o->bench.batch, "sequences per step")->capture_default_str();
      app.add_option("--seq", o->bench.seq, "sequence length")->capture_default_str();
      app.add_option("--threads", o->threads, "threads (0: default)")->capture_default_str();
      app.add_option("--steps", o->bench.steps, "timed steps")->capture_default_str();
      app.add_option("--warmup", o->bench.warmup, "untimed steps first")->capture_default_str();
      app.add_option("--seed", o->bench.seed, "weights and tokens")->capture_default_str();
      return [o] {
        loom::set_num_threads(o->threads);
        o->bench.model = read_model_config(o->config);
        std::cout << loom::format_train_bench(loom::run_train_bench(o->bench)) << std::flush;
        return 0;
      };
    });
