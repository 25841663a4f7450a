// `loom report DIR`: an SVG of loss / lr / tokens/s and a summary from a run's metrics.jsonl.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "loom/train/metrics_report.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

TEST(Report, PlotsAndSummarisesARun) {
  testing::TempDir dir;
  const std::string cfg = testing::make_run(dir, "the quick brown fox jumps over the lazy dog. ", 50,
                                            {{"max_steps", 10}, {"eval_freq", 5}, {"save_freq", 5}});
  ASSERT_EQ(testing::loom_cli("train --config " + cfg).rc, 0);
  const auto r = testing::loom_cli("report " + dir / "out");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("steps: 1..10 (10 logged)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("val loss: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("checkpoints: 2, training stalled"), std::string::npos) << r.out;
  std::stringstream svg;
  svg << std::ifstream(dir / "out/report.svg").rdbuf();
  const std::string s = svg.str();
  EXPECT_EQ(s.rfind("<?xml", 0), 0u);
  EXPECT_NE(s.find("</svg>"), std::string::npos);
  EXPECT_NE(s.find(">eval: val loss</text>"), std::string::npos);
  EXPECT_NE(s.find(">tokens/s</text>"), std::string::npos);
  // train loss, eval train loss, val loss (2 points), lr, tokens/s: five polylines of 10 or 2 points.
  size_t n = 0;
  for (size_t at = 0; (at = s.find("<polyline", at)) != std::string::npos; ++at) ++n;
  EXPECT_EQ(n, 5u) << s;
}

TEST(Report, RepeatedStepsOfARestartedRunCountOnce) {
  testing::TempDir dir;
  std::ofstream(dir / "m.jsonl")
      << R"({"type":"train","step":1,"loss":5,"lr":1,"grad_norm":1,"tokens_per_s":10,"elapsed_s":1})" "\n"
      << R"({"type":"train","step":2,"loss":4,"lr":1,"grad_norm":1,"tokens_per_s":10,"elapsed_s":2})" "\n"
      << R"({"type":"train","step":2,"loss":3,"lr":1,"grad_)" "\n"   // cut short by a kill
      << R"({"type":"train","step":2,"loss":4.5,"lr":1,"grad_norm":1,"tokens_per_s":10,"elapsed_s":1})" "\n";
  const MetricsHistory h = read_metrics(dir / "m.jsonl");
  ASSERT_EQ(h.train.size(), 2u);
  EXPECT_EQ(h.train.at(2).loss, 4.5);
}

TEST(Report, MissingLogIsAClearError) {
  testing::TempDir dir;
  const auto r = testing::loom_cli("report " + dir.path());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("metrics.jsonl: cannot open"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace loom
