// `loom bench moe` (issue 19) on a tiny model: it measures the dense peer, MoE at ep 1 and MoE at
// ep 2, and the all-to-all traffic it reports is there only when the experts are split. (Smoke
// test of the tool and its traffic counter; its timings mean nothing here.)
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

TEST(MoeBenchCli, MeasuresDenseAndBothEpsWithTrafficOnlyWhenSplit) {
  testing::TempDir dir;
  const std::string config = dir / "config.json";
  std::ofstream(config) << nlohmann::json{{"model",
                                           {{"vocab_size", 257}, {"context_len", 16},
                                            {"n_layer", 2}, {"n_head", 2}, {"d_model", 32},
                                            {"moe_experts", 4}, {"moe_top_k", 2}}}}
                               .dump();
  const testing::Result r = testing::loom_cli(
      "bench moe --config " + config + " --nproc 2 --batch_size 2 --steps 2 --warmup 1");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("4 experts, top 2"), std::string::npos) << r.out;
  // Rows: model, ep, step_ms, tokens/s, vs dense, a2a_KB/step, a2a share, max/mean.
  std::istringstream lines(r.out);
  int rows = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream f(line);
    std::string model, vs, share, load;
    int ep = 0;
    double step_ms = 0, tokens = 0, a2a_kb = -1;
    if (!(f >> model >> ep >> step_ms >> tokens >> vs >> a2a_kb >> share >> load)) continue;
    ++rows;
    EXPECT_GT(tokens, 0) << line;
    if (ep == 2)
      EXPECT_GT(a2a_kb, 0) << line;
    else
      EXPECT_EQ(a2a_kb, 0) << line;
  }
  EXPECT_EQ(rows, 3) << r.out;
}

}  // namespace
}  // namespace loom
