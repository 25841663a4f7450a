// Every value of a run is checked when the config is parsed, before any rank, mesh or timing
// starts: a bad one is one error naming the flag, the value and what is valid; exit non-zero;
// nothing written. The runs ask for 2 ranks, so an error that came from the ranks instead would
// be printed twice (once by each).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loom/config/train_config.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::loom_cli;

constexpr const char* kText = "the quick brown fox jumps over the lazy dog. ";

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

struct Case {
  std::string flags, message;
};

class ConfigValidationCli : public ::testing::Test {
 protected:
  void expect_refused_before_ranks(const std::string& args, const std::string& message) {
    const std::string out = dir_ / "out";
    const auto r = loom_cli("train --config " + cfg_ + " --nproc 2 " + args, 60);
    EXPECT_NE(r.rc, 0) << args << "\n" << r.out;
    EXPECT_EQ(count(r.out, message), 1u) << args << "\n" << r.out;
    EXPECT_EQ(count(r.out, "error:"), 1u) << args << "\n" << r.out;
    EXPECT_EQ(r.out.find("Run with --help"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  testing::TempDir dir_;
  std::string cfg_ = testing::make_run(dir_, kText, 20);
};

TEST_F(ConfigValidationCli, OutOfRangeFlagsAreRefusedBeforeAnyRankStarts) {
  const Case cases[] = {
      {"--beta1 1", "beta1 must be in [0, 1), got 1"},
      {"--beta2 1.5", "beta2 must be in [0, 1), got 1.5"},
      {"--beta2 -0.1", "beta2 must be in [0, 1), got -0.1"},
      {"--eps 0", "eps must be > 0, got 0"},
      {"--eps 1e-50", "eps must be > 0, got 0"},  // rounds to 0 as a float
      {"--lr 1e39", "train.lr = 1e+39 is out of range"},
      {"--lr -1", "lr must be > 0, got -1"},
      {"--initial_lr -1", "initial_lr must be in [0, lr = 0.003], got -1"},
      {"--min_lr -1", "min_lr must be in [0, lr = 0.003], got -1"},
      {"--weight_decay -0.1", "weight_decay must be >= 0, got -0.1"},
      {"--warmup_steps -1", "warmup_steps must be in [0, max_steps) = [0, 20), got -1"},
      {"--warmup_steps 20", "warmup_steps must be in [0, max_steps) = [0, 20), got 20"},
      {"--max_steps 0", "max_steps must be > 0, got 0"},
      {"--temperature nan", "--temperature: expected a finite number, got 'nan'"},
      {"--max_norm inf", "--max_norm: expected a finite number, got 'inf'"},
      {"--dropout 1", "model.dropout must be in [0, 1), got 1"},
      {"--grad_reduce fp8", "--grad_reduce must be f32 or bf16, got 'fp8'"},
      {"--parallel planner", "--parallel must be manual or auto, got 'planner'"},
      {"--precision fp8", "--precision: unknown precision \"fp8\" (expected f32 or bf16)"},
  };
  for (const Case& c : cases) expect_refused_before_ranks(c.flags, c.message);
}

TEST_F(ConfigValidationCli, OutOfRangeFileValuesNameTheFileAndField) {
  auto j = nlohmann::json::parse(std::ifstream(cfg_));
  j["train"]["lr"] = 1e39;
  j["train"]["beta2"] = 0.95;
  std::ofstream(cfg_) << j.dump();
  expect_refused_before_ranks("", cfg_ + ": train.lr = 1e+39 is out of range");
}

// Named choices are enumerations after parsing and are written back (state.json, to_json) as the
// names they were given as.
TEST(ConfigEnumerations, ParseOnceAndPrintAsWritten) {
  nlohmann::json j = {
      {"model", {{"vocab_size", 257}, {"context_len", 32}, {"n_layer", 4}, {"n_head", 2}, {"d_model", 16}}},
      {"train",
       {{"data_dir", "d"}, {"out_dir", "o"}, {"precision", "bf16"}, {"schedule", "zb1p"}, {"pp", 2},
        {"recompute", "selective"}, {"grad_reduce", "bf16"}, {"parallel", "auto"}}}};
  const RunConfig c = parse_run_config(j, "test");
  EXPECT_EQ(c.train.precision, kernels::MatmulPrecision::kBF16);
  EXPECT_EQ(c.train.schedule, pipeline::ScheduleKind::ZeroBubbleH1);
  EXPECT_EQ(c.train.recompute, Recompute::kSelective);
  EXPECT_EQ(c.train.grad_reduce, GradReduce::kBF16);
  EXPECT_EQ(c.train.parallel, LayoutChoice::kAuto);
  const nlohmann::json back = to_json(c)["train"];
  for (const char* key : {"precision", "schedule", "recompute", "grad_reduce", "parallel"})
    EXPECT_EQ(back[key], j["train"][key]) << key;
  const nlohmann::json defaults = to_json(RunConfig{})["train"];
  EXPECT_EQ(defaults["precision"], "f32");
  EXPECT_EQ(defaults["schedule"], "1f1b");
  EXPECT_EQ(defaults["recompute"], "none");
  EXPECT_EQ(defaults["grad_reduce"], "f32");
  EXPECT_EQ(defaults["parallel"], "manual");
}

}  // namespace
}  // namespace loom
