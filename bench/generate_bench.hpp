#pragma once
// `loom bench generate`: generation speed of a model with random weights, prompt P + N new
// tokens greedily, for batches of prompts: Loom without cache (batch 1), with the KV cache (f32
// and int8 weights), and llama.cpp (node-llama-cpp) on the same weights exported as GGUF f32 and
// q8_0, all in the same run so the ratios compare like with like.
#include <string>
#include <vector>

#include "loom/model/gpt_config.hpp"

namespace loom::infer {

struct GenerateBenchOptions {
  GPTConfig model;
  int prompt_len = 128;
  int new_tokens = 128;
  std::vector<int> batches = {1, 8};
  bool no_cache = true;    // the no-cache row (batch 1 only: it is B times the same work)
  bool llama_cpp = true;   // needs node-llama-cpp (scripts/setup.sh) and node
  std::string npm_dir;     // node_modules with node-llama-cpp
  std::string script;      // scripts/llama_cpp.mjs
  int threads = 2;
  uint64_t seed = 1;
};

struct GenerateBenchRow {
  std::string engine;   // "loom no-cache", "loom kv-cache", "llama.cpp"
  std::string weights;  // f32, int8, q8_0
  int batch = 1;
  double prefill_s = -1;  // prompt pass (< 0: not separated)
  double decode_s = 0;    // the remaining single-token steps
  int decode_steps = 0;   // forwards in decode_s (per sequence)
  double total_s = 0;
  int new_tokens = 0;     // per sequence
};

std::vector<GenerateBenchRow> run_generate_bench(const GenerateBenchOptions& opts);
std::string format_generate_bench(const GenerateBenchOptions& opts,
                                  const std::vector<GenerateBenchRow>& rows);

}  // namespace loom::infer
