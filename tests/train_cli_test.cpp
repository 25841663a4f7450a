// `loom train` and `loom generate` end to end: the real binary on tiny byte-level shards that the
// test writes itself.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "loom/core/checksum.hpp"
#include "loom/data/token_shard.hpp"
#include "loom/io/file_io.hpp"
#include "loom/io/safetensors.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::loom_cli;
using testing::make_run;
using testing::Result;
using testing::train_losses;

// Every file under `dir` with a checksum of its bytes: equal snapshots = nothing was touched.
std::map<std::string, uint64_t> snapshot(const std::string& dir) {
  std::map<std::string, uint64_t> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const auto bytes = read_file(e.path().string());
    out[e.path().string()] = fnv1a64(bytes.data(), bytes.size());
  }
  return out;
}

const std::string kText = "the quick brown fox jumps over the lazy dog. ";

TEST(TrainCli, TinyModelOverfitsRepeatedText) {
  testing::TempDir dir;
  const std::string cfg = make_run(dir, kText, 200,
                                   {{"max_steps", 150}, {"eval_freq", 50}, {"save_freq", 0}, {"lr", 1e-2},
                                    {"min_lr", 1e-3}});
  const Result r = loom_cli("train --config " + cfg);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("step 1/150 | loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eval step 50 | train loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sample: the "), std::string::npos) << r.out;
  const auto losses = train_losses(dir / "out/metrics.jsonl");
  ASSERT_EQ(losses.size(), 150u);
  EXPECT_GT(losses.at(1), 5.0);   // ~ln(257) at the start
  EXPECT_LT(losses.at(150), 0.5) << r.out;  // the stated bound: below 0.5 nats within 150 steps
  EXPECT_TRUE(fs::exists(dir / "out/step_000150/model.safetensors"));
  std::string latest;
  std::ifstream(dir / "out/latest") >> latest;
  EXPECT_EQ(latest, "step_000150");
  const Result g = loom_cli("generate --checkpoint " + dir / "out/latest" + " --prompt 'the quick' --temperature 0 --max_new_tokens 12");
  ASSERT_EQ(g.rc, 0) << g.out;
  EXPECT_EQ(g.out.substr(0, 9), "the quick") << g.out;
}

// Save at step 10, resume, continue to 20: parameters, moments, data position, RNG and losses are
// identical to the uninterrupted run (with dropout and gradient accumulation on, so the RNG and
// data position both matter).
TEST(TrainCli, ResumedRunIsBitIdenticalToUninterruptedRun) {
  testing::TempDir dir;
  const std::string cfg = make_run(dir, kText, 50, {{"grad_accum", 2}});
  nlohmann::json model_dropout = nlohmann::json::parse(std::ifstream(cfg));
  model_dropout["model"]["dropout"] = 0.1;
  std::ofstream(cfg) << model_dropout.dump();
  const Result a = loom_cli("train --config " + cfg);
  ASSERT_EQ(a.rc, 0) << a.out;
  const Result b = loom_cli("train --resume " + dir / "out/step_000010" + " --out_dir " + dir / "resumed");
  ASSERT_EQ(b.rc, 0) << b.out;
  EXPECT_NE(b.out.find("resumed from"), std::string::npos) << b.out;
  for (const char* f : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_EQ(read_file(dir / "out/step_000020/" + f), read_file(dir / "resumed/step_000020/" + f)) << f;
  auto state = [&](const std::string& d) {
    auto j = nlohmann::json::parse(std::ifstream(d + "/step_000020/state.json"));
    return std::make_pair(j["data"], j["rng"]);
  };
  EXPECT_EQ(state(dir / "out"), state(dir / "resumed"));
  const auto full = train_losses(dir / "out/metrics.jsonl"), resumed = train_losses(dir / "resumed/metrics.jsonl");
  ASSERT_EQ(resumed.size(), 10u);
  for (const auto& [step, loss] : resumed) EXPECT_EQ(loss, full.at(step)) << "step " << step;

  // --resume latest continues the newest checkpoint of out_dir.
  const Result c = loom_cli("train --config " + cfg + " --out_dir " + dir / "resumed" + " --resume latest --max_steps 22");
  ASSERT_EQ(c.rc, 0) << c.out;
  EXPECT_NE(c.out.find("step 21/22"), std::string::npos) << c.out;
  EXPECT_TRUE(fs::exists(dir / "resumed/step_000022"));
}

TEST(TrainCli, BadConfigOrFlagIsAClearErrorAndWritesNothing) {
  testing::TempDir dir;
  const std::string cfg = make_run(dir, kText, 50);
  auto j = nlohmann::json::parse(std::ifstream(cfg));
  const std::string out = dir / "out";
  struct Case {
    std::string args, message;
  };
  std::vector<Case> cases = {{"--bogus 1", "--bogus"},
                             {"--lr fast", "--lr: expected a number, got 'fast'"},
                             {"--seq_len 64", "seq_len must be in [1, context_len = 32]"},
                             {"--recompute bogus", "--recompute must be none, selective or full, got 'bogus'"},
                             {"--recompute full --pp 2 --nproc 2 --schedule zb1p",
                              "recompute full cannot run with schedule zb1p"}};
  auto with = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
    auto k = j;
    edit(k);
    const std::string path = dir / name;
    std::ofstream(path) << k.dump();
    return path;
  };
  cases.push_back({"--config " + with("no_data.json", [](auto& k) { k["train"].erase("data_dir"); }),
                   "missing required field data_dir"});
  cases.push_back({"--config " + with("typo.json", [](auto& k) { k["train"]["batch_sise"] = 4; }),
                   "unknown field train.batch_sise"});
  cases.push_back({"--config " + with("type.json", [](auto& k) { k["train"]["batch_size"] = "four"; }),
                   "train.batch_size must be an integer"});
  for (const auto& c : cases) {
    const std::string args = c.args.rfind("--config", 0) == 0 ? c.args : "--config " + cfg + " " + c.args;
    const Result r = loom_cli("train " + args);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << args << "\n" << r.out;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
}

TEST(TrainCli, DamagedCheckpointIsRefusedAndNothingIsOverwritten) {
  testing::TempDir dir;
  const std::string cfg = make_run(dir, kText, 50, {{"max_steps", 10}});
  ASSERT_EQ(loom_cli("train --config " + cfg).rc, 0);
  const std::string out = dir / "out", ckpt = out + "/step_000010";

  // A fresh run into an out_dir with checkpoints would clobber them: refused.
  auto before = snapshot(out);
  Result r = loom_cli("train --config " + cfg + " --max_steps 20");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("already holds checkpoints"), std::string::npos) << r.out;
  EXPECT_EQ(snapshot(out), before);

  // Wrong-shaped tensor (with a consistent checksum, as a hand-edited file would have): refused,
  // naming the tensor, by both train --resume and generate.
  const std::string model = ckpt + "/model.safetensors";
  {
    const auto f = SafetensorsFile::load(model);
    std::vector<TensorToWrite> tensors;
    for (const auto& [name, e] : f.tensors()) {
      auto shape = e.shape;
      if (name == "transformer.h.0.mlp.c_fc.weight") std::swap(shape[0], shape[1]);
      tensors.push_back({name, e.dtype, shape, f.data(name).data()});
    }
    const uint64_t hash = write_safetensors(model, tensors, f.metadata());
    auto state = nlohmann::json::parse(std::ifstream(ckpt + "/state.json"));
    state["files"]["model.safetensors"] = {{"bytes", fs::file_size(model)}, {"fnv1a64", hex64(hash)}};
    std::ofstream(ckpt + "/state.json") << state.dump();
  }
  before = snapshot(out);
  for (const std::string& args : {"train --config " + cfg + " --resume latest --max_steps 20",
                                 "generate --checkpoint " + ckpt + " --prompt the"}) {
    r = loom_cli(args);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_NE(r.out.find("'transformer.h.0.mlp.c_fc.weight' is F32 [128, 32], expected F32 [32, 128]"), std::string::npos) << r.out;
  }
  EXPECT_EQ(snapshot(out), before);

  // Truncated file: refused with a message saying so.
  fs::resize_file(model, fs::file_size(model) / 2);
  before = snapshot(out);
  r = loom_cli("train --config " + cfg + " --resume latest --max_steps 20");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.safetensors"), std::string::npos) << r.out;
  EXPECT_EQ(snapshot(out), before);
}

}  // namespace
}  // namespace loom
