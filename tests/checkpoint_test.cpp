#include "loom/train/checkpoint.hpp"

#include <gtest/gtest.h>

#include "error_of.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <algorithm>

#include "loom/core/check.hpp"
#include "loom/core/checksum.hpp"
#include "loom/io/file_io.hpp"
#include "loom/io/safetensors.hpp"
#include "loom/model/param_layout.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;

GPTConfig tiny_model(int d_model = 8) {
  GPTConfig c;
  c.vocab_size = 11;
  c.context_len = 4;
  c.n_layer = 1;
  c.n_head = 2;
  c.d_model = d_model;
  return c;
}

struct Fixture {
  std::vector<ParamInfo> layout = gpt_param_layout(tiny_model());
  size_t n = layout.back().offset + layout.back().numel;
  std::vector<float> params;
  AdamW opt{layout, AdamWParams{}};
  CheckpointState state;

  Fixture() {
    params.resize(n);
    std::vector<float> grads(n);
    for (size_t i = 0; i < n; ++i) {
      params[i] = 0.01f * static_cast<float>(i % 97);
      grads[i] = 0.001f * static_cast<float>(i % 13) - 0.005f;
    }
    opt.step(params.data(), grads.data(), 1e-3f);
    opt.step(params.data(), grads.data(), 1e-3f);
    state.step = 2;
    state.data = {3, 48};
    state.dropout_rng = {1, 2, 3, 0xffffffffffffffffULL};
    state.tokenizer = "byte";
    state.config = {{"model", tiny_model()}, {"train", {{"lr", 0.001}}}};
  }
  std::string save(const std::string& out_dir) {
    return save_checkpoint(out_dir, state, layout, params.data(), opt);
  }
};

using test::error_of;

TEST(Checkpoint, RoundTripRestoresParamsMomentsStepAndState) {
  testing::TempDir dir;
  Fixture a;
  const std::string ckpt = a.save(dir.path());
  EXPECT_EQ(ckpt, dir / "step_000002");
  EXPECT_EQ(resolve_checkpoint(dir / "latest"), ckpt);

  const CheckpointState s = read_checkpoint_state(ckpt);
  EXPECT_EQ(s.step, 2);
  EXPECT_EQ(s.data.epoch, 3u);
  EXPECT_EQ(s.data.samples, 48u);
  EXPECT_EQ(s.dropout_rng, a.state.dropout_rng);
  EXPECT_EQ(s.tokenizer, "byte");
  EXPECT_EQ(s.config, a.state.config);

  std::vector<float> params(a.n);
  AdamW opt(a.layout, AdamWParams{});
  load_checkpoint_params(ckpt, a.layout, params.data());
  load_checkpoint_optimizer(ckpt, a.layout, opt);
  EXPECT_EQ(params, a.params);
  EXPECT_EQ(std::vector<float>(opt.m(), opt.m() + a.n), std::vector<float>(a.opt.m(), a.opt.m() + a.n));
  EXPECT_EQ(std::vector<float>(opt.v(), opt.v() + a.n), std::vector<float>(a.opt.v(), a.opt.v() + a.n));
  EXPECT_EQ(opt.step_count(), 2);
  // model.safetensors holds exactly the Hugging Face names.
  const auto f = SafetensorsFile::load(ckpt + "/model.safetensors");
  EXPECT_EQ(f.tensors().size(), a.layout.size());
  EXPECT_EQ(f.entry("transformer.h.0.attn.c_attn.weight").shape, (std::vector<int64_t>{8, 24}));
}

TEST(Checkpoint, TruncatedFileIsRefusedBeforeAnythingIsLoaded) {
  testing::TempDir dir;
  Fixture a;
  const std::string ckpt = a.save(dir.path());
  fs::resize_file(ckpt + "/model.safetensors", fs::file_size(ckpt + "/model.safetensors") - 10);
  std::vector<float> params(a.n, -7.0f);
  const std::string err = error_of([&] { load_checkpoint_params(ckpt, a.layout, params.data()); });
  EXPECT_NE(err.find("model.safetensors"), std::string::npos) << err;
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  EXPECT_EQ(params[0], -7.0f);
}

TEST(Checkpoint, ChecksumMismatchIsRefused) {
  testing::TempDir dir;
  Fixture a;
  const std::string ckpt = a.save(dir.path());
  auto bytes = read_file(ckpt + "/optimizer.safetensors");
  bytes[bytes.size() - 3] ^= 0x40;  // one bit in the data: still a valid safetensors file
  SyncedFile f(ckpt + "/optimizer.safetensors");
  f.write(bytes.data(), bytes.size());
  f.close();
  AdamW opt(a.layout, AdamWParams{});
  const std::string err = error_of([&] { load_checkpoint_optimizer(ckpt, a.layout, opt); });
  EXPECT_NE(err.find("checksum"), std::string::npos) << err;
  EXPECT_NE(err.find("optimizer.safetensors"), std::string::npos) << err;
}

TEST(Checkpoint, WrongShapedTensorIsRefusedNamingIt) {
  testing::TempDir dir;
  Fixture a;
  const std::string ckpt = a.save(dir.path());
  const auto wider = gpt_param_layout(tiny_model(16));
  std::vector<float> params(wider.back().offset + wider.back().numel);
  const std::string err = error_of([&] { load_checkpoint_params(ckpt, wider, params.data()); });
  EXPECT_NE(err.find("'transformer.wte.weight' is F32 [11, 8], expected F32 [11, 16]"), std::string::npos)
      << err;
}

TEST(Checkpoint, InterruptedSaveNeverReplacesTheLastGoodOne) {
  testing::TempDir dir;
  Fixture a;
  const std::string good = a.save(dir.path());
  // A save of step 4 that died halfway: a partial temporary directory is all that is left.
  fs::create_directory(dir / ".tmp-step_000004");
  std::ofstream(dir / ".tmp-step_000004/model.safetensors") << "partial";
  EXPECT_EQ(resolve_checkpoint(dir / "latest"), good);
  std::vector<float> params(a.n);
  load_checkpoint_params(resolve_checkpoint(dir / "latest"), a.layout, params.data());
  EXPECT_EQ(params, a.params);
  // The next save of that step cleans up and succeeds; saving an existing step replaces it.
  a.state.step = 4;
  EXPECT_EQ(a.save(dir.path()), dir / "step_000004");
  EXPECT_FALSE(fs::exists(dir / ".tmp-step_000004"));
  a.params[0] = 123.0f;
  a.save(dir.path());
  load_checkpoint_params(dir / "step_000004", a.layout, params.data());
  EXPECT_EQ(params[0], 123.0f);
  EXPECT_EQ(resolve_checkpoint(dir / "latest"), dir / "step_000004");
}

TEST(Checkpoint, PruneKeepsTheNewestAndLatest) {
  testing::TempDir dir;
  Fixture a;
  for (int s : {1, 2, 3, 4}) {
    a.state.step = s;
    a.save(dir.path());
  }
  prune_checkpoints(dir.path(), 2);
  EXPECT_FALSE(fs::exists(dir / "step_000001"));
  EXPECT_FALSE(fs::exists(dir / "step_000002"));
  EXPECT_TRUE(fs::exists(dir / "step_000003"));
  EXPECT_TRUE(fs::exists(dir / "step_000004"));
}

TEST(Checkpoint, MissingOrBadStateIsAClearError) {
  testing::TempDir dir;
  EXPECT_NE(error_of([&] { resolve_checkpoint(dir / "nope"); }).find("does not exist"), std::string::npos);
  Fixture a;
  const std::string ckpt = a.save(dir.path());
  fs::resize_file(ckpt + "/state.json", 20);
  EXPECT_NE(error_of([&] { read_checkpoint_state(ckpt); }).find("state.json: not valid JSON"),
            std::string::npos);
}

}  // namespace
}  // namespace loom

namespace loom {
namespace {

// A source that hands every tensor out through the writer's scratch buffer (as a sharded model
// gathers it) and records what the writer asked for.
class RecordingSource : public CheckpointSource {
 public:
  RecordingSource(const std::vector<ParamInfo>& layout, const float* params, const AdamW& opt)
      : whole_(layout, params, opt) {}
  const float* tensor(CheckpointTensor kind, const ParamInfo& p, float* scratch) override {
    asked.emplace_back(kind, p.name);
    scratches.insert(scratch);
    const float* t = whole_.tensor(kind, p, nullptr);
    std::copy(t, t + p.numel, scratch);
    return scratch;
  }
  int64_t optimizer_step() const override { return whole_.optimizer_step(); }

  std::vector<std::pair<CheckpointTensor, std::string>> asked;
  std::set<const float*> scratches;

 private:
  BufferCheckpointSource whole_;
};

// A save asks its source for one tensor at a time, in for_each_checkpoint_tensor's order, always
// into the same one-tensor scratch buffer (no whole copy of parameters or moments), and writes
// the very bytes a save from whole buffers writes; a rank that only drains asks the same.
TEST(Checkpoint, AGatheringSourceIsAskedOneTensorAtATimeIntoOneScratchBuffer) {
  testing::TempDir dir;
  Fixture a;
  const std::string whole = a.save(dir / "whole");
  RecordingSource source(a.layout, a.params.data(), a.opt);
  const std::string gathered = save_checkpoint(dir / "gathered", a.state, a.layout, source);
  for (const char* f : {"model.safetensors", "optimizer.safetensors"})
    EXPECT_EQ(read_file(gathered + "/" + f), read_file(whole + "/" + f)) << f;
  EXPECT_EQ(source.scratches.size(), 1u);
  std::vector<std::pair<CheckpointTensor, std::string>> order;
  for_each_checkpoint_tensor(a.layout, [&](CheckpointTensor k, const ParamInfo& p) {
    order.emplace_back(k, p.name);
  });
  EXPECT_EQ(order.size(), 3 * a.layout.size());
  EXPECT_EQ(source.asked, order);
  RecordingSource drained(a.layout, a.params.data(), a.opt);
  drain_checkpoint_source(a.layout, drained);
  EXPECT_EQ(drained.asked, order);
}

}  // namespace
}  // namespace loom
