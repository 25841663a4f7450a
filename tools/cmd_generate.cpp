// `loom generate`: continue a prompt with a trained checkpoint.
#include <iostream>
#include <memory>

#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/rng.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/model/generate.hpp"
#include "loom/model/gpt.hpp"
#include "loom/train/checkpoint.hpp"

namespace {

struct Options {
  std::string checkpoint;
  std::string prompt;
  int max_new_tokens = 64;
  float temperature = 1.0f;
  int top_k = 40;
  uint64_t seed = 0;
  std::string tokenizer;
  int threads = 0;
};

int run(const Options& o) {
  loom::set_num_threads(o.threads);
  const std::string dir = loom::resolve_checkpoint(o.checkpoint);
  const loom::CheckpointState state = loom::read_checkpoint_state(dir);
  LOOM_CHECK(state.config.is_object() && state.config.contains("model"), dir,
             "/state.json: no model config");
  const auto config = state.config["model"].get<loom::GPTConfig>();
  loom::GPT model(config);
  loom::load_checkpoint_params(dir, model.layout(), model.params());
  const auto tokenizer = loom::load_tokenizer(o.tokenizer.empty() ? state.tokenizer : o.tokenizer);
  std::vector<int32_t> prompt = tokenizer->encode(o.prompt);
  if (prompt.empty()) prompt.push_back(tokenizer->eot_id());
  loom::Rng rng(o.seed);
  const auto ids = loom::generate(model, prompt, o.max_new_tokens, {o.temperature, o.top_k}, rng);
  std::cout << o.prompt << tokenizer->decode(ids) << std::endl;
  return 0;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "generate", "Continue a prompt with a trained checkpoint", [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--checkpoint", o->checkpoint,
                     "checkpoint directory or a `latest` file (e.g. runs/tiny/latest)")
          ->required();
      app.add_option("--prompt", o->prompt, "text to continue")->required();
      app.add_option("--max_new_tokens", o->max_new_tokens, "tokens to generate")
          ->capture_default_str()->check(CLI::Range(1, 1 << 20));
      app.add_option("--temperature", o->temperature, "sampling temperature; 0: greedy")
          ->capture_default_str()->check(CLI::NonNegativeNumber);
      app.add_option("--top_k", o->top_k, "sample among the k most likely tokens; 0: all")
          ->capture_default_str()->check(CLI::NonNegativeNumber);
      app.add_option("--seed", o->seed, "sampling seed")->capture_default_str();
      app.add_option("--tokenizer", o->tokenizer, "gpt2 or byte (default: the checkpoint's)");
      app.add_option("--threads", o->threads, "OpenMP/BLAS threads; 0: default")->capture_default_str();
      return [o] { return run(*o); };
    });
