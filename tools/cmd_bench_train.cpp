// `loom bench train`: training throughput per precision (f32, bf16), MFU against the f32 and bf16
// matmul peaks measured in the same run, and a per-kernel breakdown.
#include <iostream>
#include <memory>
#include <sstream>
#include <vector>

#include "bench/train_bench.hpp"
#include "command_registry.hpp"
#include "device_option.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/config/train_config.hpp"

namespace {
struct Options {
  std::string config;
  loom::TrainBenchOptions bench;
  int threads = 0;
  std::string precisions = "f32";
  bool per_use_weights = false;
  std::string recompute = "none";
};

// "f32,bf16" -> the precisions that will run (bf16 falls back to f32 with a notice), in order.
std::vector<loom::kernels::MatmulPrecision> parse_precisions(const std::string& list) {
  std::vector<loom::kernels::MatmulPrecision> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    out.push_back(loom::kernels::resolve_precision(
        loom::kernels::parse_precision(item, "--precision")));
  }
  LOOM_CHECK(!out.empty(), "--precision: expected a list such as f32,bf16");
  return out;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "bench train",
    "Measure training throughput per matmul precision, MFU against the f32 and bf16 matmul peaks, "
    "and kernel times",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      loom::cli::add_device_option(app, "bench train");
      app.add_option("--config", o->config, "config file (its \"model\" section is used)")
          ->required();
      app.add_option("--batch_size", o->bench.batch, "sequences per step")->capture_default_str();
      app.add_option("--seq_len", o->bench.seq, "sequence length")->capture_default_str();
      app.add_option("--threads", o->threads, "threads (0: default)")->capture_default_str();
      app.add_option("--steps", o->bench.steps, "timed steps")->capture_default_str();
      app.add_option("--warmup", o->bench.warmup, "untimed steps first")->capture_default_str();
      app.add_option("--seed", o->bench.seed, "weights and tokens")->capture_default_str();
      app.add_option("--precision", o->precisions,
                     "comma-separated matmul precisions to run in turn (f32, bf16)")
          ->capture_default_str();
      app.add_flag("--per_use_weights", o->per_use_weights,
                   "bf16: convert weights to bf16 at every use instead of once per step");
      app.add_option("--recompute", o->recompute, "activation recomputation: none, selective, full")
          ->capture_default_str();
      return [o] {
        const auto precisions = parse_precisions(o->precisions);
        o->bench.recompute = loom::parse_recompute(o->recompute);
        loom::set_num_threads(o->threads);
        o->bench.model = loom::load_model_config(o->config);
        o->bench.cache_weights = !o->per_use_weights;
        loom::MatmulPeaks peaks;
        loom::measure_peaks(peaks, /*before=*/true);
        std::vector<loom::TrainBenchResult> results;
        for (auto p : precisions) {
          o->bench.precision = p;
          results.push_back(loom::run_train_bench(o->bench));
        }
        loom::measure_peaks(peaks, /*before=*/false);
        std::cout << loom::format_peaks(peaks);
        for (const auto& r : results) std::cout << loom::format_train_bench(r, peaks);
        if (results.size() > 1) {
          std::cout << "tokens/s relative to the first: ";
          for (const auto& r : results) {
            std::cout << loom::kernels::precision_name(r.opts.precision) << " "
                      << r.tokens_per_s / results[0].tokens_per_s << "x  ";
          }
          std::cout << "\n";
        }
        std::cout << std::flush;
        return 0;
      };
    });
