// `loom bench generate`: tokens/s of generation (no cache, KV cache, KV cache + int8) against
// llama.cpp on the same weights, measured in the same run.
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "bench/generate_bench.hpp"
#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/config/train_config.hpp"

namespace {


struct Options {
  std::string config;
  std::string batches = "1,8";
  bool no_llama_cpp = false;
  loom::infer::GenerateBenchOptions bench;
};

std::vector<int> parse_batches(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    int b = 0;
    try {
      b = std::stoi(item);
    } catch (const std::exception&) {
    }
    LOOM_CHECK(b > 0, "--batch_size: expected positive integers separated by commas, got '", text, "'");
    out.push_back(b);
  }
  LOOM_CHECK(!out.empty(), "--batch_size: no batch sizes in '", text, "'");
  return out;
}

int run(Options& o) {
  auto& b = o.bench;
  b.batches = parse_batches(o.batches);
  const auto j = loom::load_config_json(o.config);
  LOOM_CHECK(j.is_object() && j.contains("model"), o.config, ": no \"model\" section");
  b.model = j["model"].get<loom::GPTConfig>();
  b.model.validate();
  b.llama_cpp = !o.no_llama_cpp;
  if (b.npm_dir.empty()) b.npm_dir = loom::default_npm_dir();
  // The script sits in the source tree beside .deps/: <src>/.deps/node_modules -> <src>/scripts.
  if (b.script.empty())
    b.script = (std::filesystem::path(b.npm_dir).parent_path().parent_path() / "scripts/llama_cpp.mjs").string();
  loom::set_num_threads(b.threads);
  std::cout << loom::infer::format_generate_bench(b, loom::infer::run_generate_bench(b)) << std::flush;
  return 0;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "bench generate", "Generation tokens/s: no cache, KV cache, int8, and llama.cpp on the same model",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--config", o->config, "config file (its \"model\" section; random weights)")
          ->required();
      app.add_option("--prompt_len", o->bench.prompt_len, "prompt tokens")->capture_default_str();
      app.add_option("--max_new_tokens", o->bench.new_tokens, "generated tokens")->capture_default_str();
      app.add_option("--batch_size", o->batches, "prompts generated together, comma-separated")->capture_default_str();
      app.add_option("--threads", o->bench.threads, "threads (Loom and llama.cpp)")->capture_default_str();
      app.add_option("--seed", o->bench.seed, "weights and prompts")->capture_default_str();
      app.add_flag("--no_llama_cpp", o->no_llama_cpp, "skip the llama.cpp rows");
      app.add_option("--npm_dir", o->bench.npm_dir, "node_modules holding node-llama-cpp (default: the source tree's .deps)");
      return [o] { return run(*o); };
    });
