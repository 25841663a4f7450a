#pragma once
// A small trained GPT-2 checkpoint for the inference and export tests: the gpt2 tokenizer,
// d_model 32 (a multiple of q8_0's block), trained by the real `loom train` on a short text
// repeated, so its greedy continuations of that text are confident and far from ties.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loom/data/token_shard.hpp"
#include "loom/data/tokenizer.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom::testing {

inline const char* kTinyText =
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a "
    "single step. All that glitters is not gold. The early bird catches the worm, but the second "
    "mouse gets the cheese. Knowledge is power, and time is money. ";

// Writes <dir>/data (train: the text x 40, val: a different order of its sentences x 4) and
// trains <dir>/out for `steps` steps; returns the checkpoint directory (<dir>/out/latest).
inline std::string train_tiny_gpt2(const TempDir& dir, int steps = 150) {
  namespace fs = std::filesystem;
  const auto tok = load_tokenizer("gpt2");
  const std::string data = dir / "data";
  fs::create_directories(data);
  std::vector<uint16_t> train, val;
  const auto ids = tok->encode(kTinyText);
  for (int r = 0; r < 40; ++r) train.insert(train.end(), ids.begin(), ids.end());
  const auto shuffled = tok->encode(
      "All that glitters is not gold. The quick brown fox jumps over the lazy dog. Knowledge is "
      "power, and time is money. A journey of a thousand miles begins with a single step. ");
  for (int r = 0; r < 4; ++r) val.insert(val.end(), shuffled.begin(), shuffled.end());
  write_shard(data + "/tiny_train_000000.bin", train);
  write_shard(data + "/tiny_val_000000.bin", val);
  std::ofstream(data + "/meta.json") << R"({"tokenizer": "gpt2"})";
  const nlohmann::json cfg = {
      {"model", {{"vocab_size", 50257}, {"context_len", 32}, {"n_layer", 2}, {"n_head", 2}, {"d_model", 32}}},
      {"train",
       {{"data_dir", data}, {"out_dir", dir / "out"}, {"batch_size", 4}, {"seq_len", 32},
        {"max_steps", steps}, {"lr", 1e-2}, {"initial_lr", 1e-3}, {"min_lr", 1e-3},
        {"warmup_steps", 10}, {"eval_freq", 0}, {"save_freq", steps}, {"sample_freq", -1},
        {"threads", 1}}}};
  std::ofstream(dir / "config.json") << cfg.dump(2);
  const Result r = loom_cli("train --config " + (dir / "config.json"), 240);
  if (r.rc != 0) throw std::runtime_error("loom train failed:\n" + r.out);
  return dir / "out/latest";
}

}  // namespace loom::testing
