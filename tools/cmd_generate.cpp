// `loom generate`: continue a prompt (or one prompt per line of a file) with a trained
// checkpoint, with a KV cache (default) and optionally int8 weights. A single prompt's tokens are
// written to stdout as they are produced; generation stops at <|endoftext|> unless --ignore_eos.
// The sampling defaults are training's samples' (TrainConfig: temperature, top_k, seed).
#include <fstream>
#include <iostream>
#include <memory>
#include <span>
#include <nlohmann/json.hpp>

#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/rng.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/infer/cached_generate.hpp"
#include "loom/infer/checkpoint_model.hpp"
#include "loom/model/generate.hpp"
#include "loom/config/train_config.hpp"

namespace {

struct Options {
  std::string checkpoint;
  std::string prompt;
  std::string batch_prompts;
  int max_new_tokens = 64;
  float temperature = loom::TrainConfig{}.temperature;
  int top_k = loom::TrainConfig{}.top_k;
  float top_p = 1.0f;
  uint64_t seed = loom::TrainConfig{}.seed;
  bool ignore_eos = false;
  std::string tokenizer;
  std::string quantize = "none";
  bool no_cache = false;
  bool print_ids = false;
  int threads = 0;
};

std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  LOOM_CHECK(in, "--batch_prompts: cannot read ", path);
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) prompts.push_back(line);
  LOOM_CHECK(!prompts.empty(), "--batch_prompts: ", path, " has no prompts (one per line)");
  return prompts;
}

int run(const Options& o) {
  LOOM_CHECK(o.prompt.empty() != o.batch_prompts.empty(),
             "give exactly one of --prompt and --batch_prompts");
  LOOM_CHECK(o.top_p > 0 && o.top_p <= 1, "--top_p must be in (0, 1], got ", o.top_p);
  const auto weights = loom::infer::parse_weight_type(o.quantize, "--quantize");
  LOOM_CHECK(!(o.no_cache && weights == loom::infer::WeightType::Int8),
             "--quantize int8 runs with the KV cache; drop --no_cache");
  loom::set_num_threads(o.threads);
  const auto texts = o.batch_prompts.empty() ? std::vector<std::string>{o.prompt}
                                             : read_prompts(o.batch_prompts);
  auto ckpt = loom::infer::load_checkpoint_model(o.checkpoint);
  const auto tokenizer = loom::load_tokenizer(o.tokenizer.empty() ? ckpt.state.tokenizer : o.tokenizer);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& t : texts) {
    prompts.push_back(tokenizer->encode(t));
    if (prompts.back().empty()) prompts.back().push_back(tokenizer->eot_id());
  }
  loom::Rng rng(o.seed);
  const loom::SampleOptions sample{o.temperature, o.top_k, o.top_p};
  loom::GenerateControl control;
  control.stop_token = o.ignore_eos ? -1 : tokenizer->eot_id();
  const bool stream = o.batch_prompts.empty();
  if (stream) {  // the prompt now, then each token as it is sampled
    if (!o.print_ids) std::cout << texts[0] << std::flush;
    control.on_token = [&, first = true](int, int32_t token) mutable {
      if (o.print_ids) std::cout << (first ? "" : " ") << token;
      else std::cout << tokenizer->decode(std::span<const int32_t>(&token, 1));
      std::cout << std::flush;
      first = false;
    };
  }
  std::vector<std::vector<int32_t>> outs;
  if (o.no_cache) {
    for (const auto& p : prompts)
      outs.push_back(loom::generate(*ckpt.model, p, o.max_new_tokens, sample, rng, control));
  } else {
    loom::infer::KVDecoder decoder(*ckpt.model, weights);
    outs = loom::infer::generate_cached(decoder, prompts, o.max_new_tokens, sample, rng, control);
  }
  for (size_t i = 0; i < outs.size(); ++i) {
    if (stream) {
      std::cout << "\n";
    } else if (o.print_ids) {
      for (size_t j = 0; j < outs[i].size(); ++j) std::cout << (j ? " " : "") << outs[i][j];
      std::cout << "\n";
    } else {  // one JSON object per prompt: continuations may span lines
      std::cout << nlohmann::json{{"prompt", texts[i]}, {"completion", tokenizer->decode(outs[i])}}.dump(
                       -1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
    }
  }
  return 0;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "generate", "Continue a prompt with a trained checkpoint (KV cache; int8 weights optional)",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--checkpoint", o->checkpoint,
                     "checkpoint directory, a `latest` file, or a run directory (its latest): runs/tiny")
          ->required();
      app.add_option("--prompt", o->prompt, "text to continue");
      app.add_option("--batch_prompts", o->batch_prompts,
                     "file with one prompt per line, generated together (prints JSON lines "
                     "{\"prompt\", \"completion\"} at the end; a single --prompt streams)");
      app.add_option("--max_new_tokens", o->max_new_tokens, "tokens to generate")
          ->capture_default_str()->check(CLI::Range(1, 1 << 20));
      app.add_option("--temperature", o->temperature, "sampling temperature; 0: greedy")
          ->capture_default_str()->check(CLI::NonNegativeNumber);
      app.add_option("--top_k", o->top_k, "sample among the k most likely tokens; 0: all")
          ->capture_default_str()->check(CLI::NonNegativeNumber);
      app.add_option("--top_p", o->top_p,
                     "nucleus sampling: among the fewest most likely tokens (after --top_k) whose "
                     "probabilities sum to >= top_p; 1: all")
          ->capture_default_str();
      app.add_option("--seed", o->seed, "sampling seed")->capture_default_str();
      app.add_flag("--ignore_eos", o->ignore_eos,
                   "keep generating past <|endoftext|> (default: stop there; it is not printed)");
      app.add_option("--tokenizer", o->tokenizer, "gpt2 or byte (default: the checkpoint's)");
      app.add_option("--quantize", o->quantize,
                     "weights for generation: none (f32) or int8 (per-output-channel scales)")
          ->capture_default_str();
      app.add_flag("--no_cache", o->no_cache,
                   "recompute the whole context for every token (the reference path)");
      app.add_flag("--print_ids", o->print_ids, "print the generated token ids (space-separated), one line per prompt");
      app.add_option("--threads", o->threads, "OpenMP/BLAS threads; 0: default")->capture_default_str();
      return [o] { return run(*o); };
    });
