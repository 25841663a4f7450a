// `loom plan` at sizes users ask about (GPT-2 XL on 64 ranks): bounded time, a layout that fits,
// ZeRO stages and recompute modes explored by default, the per-machine calibration cache (used
// when valid, ignored with a warning when not), the cores of a rank scaling the costs, and
// `loom memory` predicting what this machine cannot measure.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "loom/parallel/pipeline/kernel_costs.hpp"
#include "loom/parallel/planner/calibration_cache.hpp"
#include "loom/parallel/planner/planner.hpp"
#include "planner_request.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

struct Row {
  std::string layout, recompute;
  int zero = 0;
  double step_s = 0, mem_gb = 0;
  bool fits = true;
};

// The table rows of `loom plan`'s output, best first.
std::vector<Row> rows(const std::string& out) {
  static const std::regex row(
      R"(^\s*\d+\s+(dp \d+ x tp \d+ x pp \d+.*?)\s+(\d)\s+(none|selective|full)\s+([\d.]+)\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+([\d.]+)(!?))");
  std::vector<Row> out_rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    out_rows.push_back({m[1], m[3], std::stoi(m[2]), std::stod(m[4]), std::stod(m[5]), m[6] != "!"});
  }
  return out_rows;
}

class PlanCli : public ::testing::Test {
 protected:
  // `loom plan <args>` with this test's own cache directory.
  testing::Result plan(const std::string& args, int timeout_s = 120) {
    return testing::run_bounded("env XDG_CACHE_HOME=" + dir_.path() + " " + LOOM_BINARY + " plan " + args,
                                timeout_s);
  }
  std::string cache() const { return dir_ / "loom/calibration.json"; }
  testing::TempDir dir_;
};

const std::string kXl = std::string(LOOM_SOURCE_DIR) + "/configs/gpt2-xl.json";

TEST_F(PlanCli, Gpt2XlOn64RanksInBoundedTimeWithALayoutThatFits) {
  // 60 s on a busy 2-core machine: the command needs about 10 s alone (calibration included).
  const auto r = plan("--config " + kXl + " --nproc 64 --mem_gb 80 --top 500", 60);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("loom plan: assuming"), std::string::npos) << "64 ranks do not fit here:\n" << r.out;
  EXPECT_NE(r.out.find("scaled-down block"), std::string::npos) << r.out;
  const auto table = rows(r.out);
  ASSERT_FALSE(table.empty()) << r.out;
  EXPECT_TRUE(table[0].fits) << r.out;
  EXPECT_LE(table[0].mem_gb, 80) << r.out;
  EXPECT_GT(table[0].step_s, 0) << r.out;
  // ZeRO and recompute explored without being asked.
  std::set<int> zeros;
  std::set<std::string> recomputes;
  for (const auto& row : table) zeros.insert(row.zero), recomputes.insert(row.recompute);
  EXPECT_EQ(zeros, (std::set<int>{0, 1, 2, 3})) << r.out;
  EXPECT_EQ(recomputes, (std::set<std::string>{"none", "selective", "full"})) << r.out;
  EXPECT_NE(r.out.find("calibration cached in " + cache()), std::string::npos) << r.out;

  // Again, from the cache, with less memory: only ZeRO or recomputation makes it fit.
  const auto tight = plan("--config " + kXl + " --nproc 64 --mem_gb 12 --top 3", 60);
  ASSERT_EQ(tight.rc, 0) << tight.out;
  EXPECT_NE(tight.out.find("calibration of this machine read from " + cache()), std::string::npos) << tight.out;
  EXPECT_EQ(tight.out.find("calibrating:"), std::string::npos) << tight.out;
  const auto best = rows(tight.out);
  ASSERT_FALSE(best.empty()) << tight.out;
  EXPECT_TRUE(best[0].fits) << tight.out;
  EXPECT_LE(best[0].mem_gb, 12) << tight.out;
}

TEST_F(PlanCli, CorruptCacheIsIgnoredWithAWarning) {
  const std::string cfg = std::string(LOOM_SOURCE_DIR) + "/configs/tiny.json";
  std::filesystem::create_directories(dir_ / "loom");
  for (const std::string& text :
       {std::string("{not json"), std::string(R"({"version": 1, "entries": [1]})")}) {
    std::ofstream(cache()) << text;
    const auto r = plan("--config " + cfg + " --nproc 2 --top 1");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("warning: ignoring the calibration cache " + cache()), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("calibrating:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("calibration cached in"), std::string::npos) << r.out;
  }
  // The rewritten cache is used (unless --recalibrate); an entry with impossible times is not.
  EXPECT_NE(plan("--config " + cfg + " --nproc 2 --top 1").out.find("read from"), std::string::npos);
  const auto again = plan("--config " + cfg + " --nproc 2 --top 1 --recalibrate true");
  EXPECT_NE(again.out.find("calibrating:"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("read from"), std::string::npos) << again.out;
  std::ifstream in(cache());
  auto j = nlohmann::json::parse(in);
  ASSERT_EQ(j["entries"].size(), 1u);
  j["entries"].begin().value()["forward_s"][0] = -1.0;
  std::ofstream(cache()) << j.dump();
  const auto r = plan("--config " + cfg + " --nproc 2 --top 1");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("is not a calibration"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("calibrating:"), std::string::npos) << r.out;
}

TEST_F(PlanCli, BadFlagsAreNamed) {
  const std::string cfg = std::string(LOOM_SOURCE_DIR) + "/configs/tiny.json";
  for (const auto& [flags, message] : std::vector<std::pair<std::string, std::string>>{
           {"--cores_per_rank -1", "--cores_per_rank must be >= 0"},
           {"--zero 4", "--zero must be 0, 1, 2, 3 or all, got '4'"},
           {"--recompute most", "--recompute (or all) must be none, selective or full, got 'most'"},
           {"--ranks_per_host 3", "--ranks_per_host must divide --nproc 2 (or be 0: every rank on one host), got 3"},
           {"--ranks_per_host -2", "--ranks_per_host must divide --nproc 2"},
           {"--inter_host_gbps 0", "--inter_host_gbps must be > 0, got 0"}}) {
    const auto r = plan("--config " + cfg + " --nproc 2 " + flags);
    EXPECT_NE(r.rc, 0) << flags;
    EXPECT_NE(r.out.find(message), std::string::npos) << flags << "\n" << r.out;
    EXPECT_FALSE(std::filesystem::exists(cache())) << flags;
  }
}

// --ranks_per_host and --inter_host_gbps reach the planner: the same layout's dp all-reduce
// crosses a slow link between 2 hosts and its predicted step grows.
TEST_F(PlanCli, HostFlagsPriceGroupsSpanningHosts) {
  const std::string cfg = std::string(LOOM_SOURCE_DIR) + "/configs/tiny.json";
  const std::string flags = "--config " + cfg + " --nproc 4 --zero 0 --recompute none --top 100";
  const auto one = plan(flags);
  const auto two = plan(flags + " --ranks_per_host 2 --inter_host_gbps 0.001");
  ASSERT_EQ(one.rc, 0) << one.out;
  ASSERT_EQ(two.rc, 0) << two.out;
  EXPECT_NE(two.out.find("2 hosts of 2 ranks, 0.001 GB/s between them"), std::string::npos) << two.out;
  EXPECT_EQ(one.out.find("hosts of"), std::string::npos) << one.out;
  auto step_of = [](const std::vector<Row>& table, const std::string& layout) {
    for (const auto& row : table)
      if (row.layout == layout) return row.step_s;
    return -1.0;
  };
  const double dp4_one = step_of(rows(one.out), "dp 4 x tp 1 x pp 1");
  const double dp4_two = step_of(rows(two.out), "dp 4 x tp 1 x pp 1");
  ASSERT_GT(dp4_one, 0) << one.out;
  ASSERT_GT(dp4_two, 0) << two.out;
  // tiny's 7 MB of gradients over 0.001 GB/s: seconds more per step.
  EXPECT_GT(dp4_two, dp4_one + 1.0) << one.out << two.out;
}

// The cores of a rank divide the calibrated compute (timed with k.threads threads).
TEST(PlanCoresPerRank, ScaleTheCalibratedCosts) {
  planner::PlanRequest r = planner::test::small_request(1);
  planner::KernelCosts k;
  k.seq = 64;
  k.threads = 2;
  k.block = {1e-3, 1e-3, 1e-3};
  k.embedding = {1e-4, 0, 1e-4};
  k.head = {1e-3, 1e-3, 1e-3};
  k.adamw_s_per_param = 1e-9;
  r.cores_per_rank = 2;
  const auto two = planner::predict(r, k, {}, {});
  r.cores_per_rank = 8;
  const auto eight = planner::predict(r, k, {}, {});
  EXPECT_DOUBLE_EQ(two.pipeline_s, 4 * eight.pipeline_s);
  EXPECT_DOUBLE_EQ(two.optimizer_s, 4 * eight.optimizer_s);
}

// Kernel times of a small shape extrapolate to a larger one by each kernel's FLOPs.
TEST(PlanCalibration, ExtrapolatesEachKernelByItsWork) {
  planner::KernelTimes t;
  t.d_model = 256, t.n_head = 4, t.vocab_size = 4096, t.seq = 256, t.threads = 1;
  t.forward_s.fill(1e-3);
  t.backward_s.fill(2e-3);
  t.step_s = 1e-9;  // no time outside the kernels
  t.adamw_s_per_param = 1e-9;
  GPTConfig same;
  same.d_model = 256, same.n_head = 4, same.vocab_size = 4096, same.context_len = 256;
  GPTConfig big = same;
  big.d_model = 512, big.vocab_size = 8192, big.context_len = 512;
  const planner::KernelCosts a = planner::kernel_costs(t, same, 256), b = planner::kernel_costs(t, big, 512);
  // Attention T^2 C: x 8.
  EXPECT_NEAR(b.block_attention_f, 8 * a.block_attention_f, 1e-12);
  // Embedding T C: x 4.
  EXPECT_NEAR(b.embedding.f, 4 * a.embedding.f, 1e-12);
  // W of a block: half the backward of its 4 linears, T C^2: x 8.
  EXPECT_NEAR(b.block.w, 8 * a.block.w, 1e-12);
  // Head F: LM head (T C V, x 8) + softmax-CE (T V, x 4) + ln_f (T C, x 4).
  EXPECT_NEAR(b.head.f, 8e-3 + 4e-3 + 4e-3 / 5, 1e-12);
  EXPECT_EQ(b.adamw_s_per_param, t.adamw_s_per_param);
  // A large model is timed scaled down, a small one as it is.
  int seq = 0;
  GPTConfig xl;
  xl.d_model = 1600, xl.n_head = 25, xl.n_layer = 48, xl.vocab_size = 50257, xl.context_len = 1024;
  const GPTConfig timed = planner::calibration_model(xl, 1024, &seq);
  EXPECT_EQ(timed.d_model, 256);
  EXPECT_EQ(timed.n_layer, 2);
  EXPECT_EQ(seq, 256);
  timed.validate();
  const GPTConfig small = planner::calibration_model(same, 64, &seq);
  EXPECT_EQ(small.d_model, 256);
  EXPECT_EQ(small.vocab_size, 4096);
  EXPECT_EQ(seq, 64);
}

TEST(MemoryCliAnySize, PredictsWhatThisMachineCannotHoldWithoutMeasuring) {
  testing::TempDir dir;
  // ~100B parameters: 1.6 TB of weights, gradients and AdamW moments.
  std::ofstream(dir / "huge.json") << R"({"model": {"vocab_size": 50257, "context_len": 1024,
      "n_layer": 96, "n_head": 64, "d_model": 9216}})";
  const auto r = testing::loom_cli("memory --config " + dir / "huge.json" + " --nproc 4 --pp 2", 60);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("(predicted only; blocks split evenly)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not measured: that is more than this machine can hold"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("measured peak RSS"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("bad_alloc"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace loom
