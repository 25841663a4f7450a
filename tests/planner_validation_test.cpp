// `loom plan --validate`: its parts (layout lists, the flags of each run, the median step time read from a metrics log, the table) and, end to end, three
// layouts of 2 ranks trained on a tiny model with predicted and measured times side by side.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <utility>

#include "bench/plan_validation.hpp"
#include "error_of.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom::planner {
namespace {

TEST(PlannerValidation, LayoutListsParseAndBadOnesAreRefused) {
  const auto L = parse_layouts("2x1x1,1x1x2:zb1p:4,1x1x2", 2, "--layouts");
  ASSERT_EQ(L.size(), 3u);
  EXPECT_EQ(L[0].describe(), "dp 2 x tp 1 x pp 1");
  EXPECT_EQ(L[1].describe(), "dp 1 x tp 1 x pp 2, zb1p, m 4");
  EXPECT_EQ(L[2].describe(), "dp 1 x tp 1 x pp 2, 1f1b, m 2");  // defaults: 1f1b, m = pp
  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"2x2x1", "--layouts: '2x2x1' has 4 ranks, --nproc is 2"},
           {"2x1", "--layouts: '2x1' is not a layout DPxTPxPP"},
           {"1x1x2:1f1b:4:9", "is not a layout DPxTPxPP"},
           {"1x0x2", "is not a layout DPxTPxPP[:schedule[:micro_batches]] of positive integers"},
           {"1x1x2:2f2b", "unknown schedule '2f2b'"},
           {"1x1x2:interleaved", "loom train does not run interleaved schedules"},
           {"2x1x1,", "is not a layout"}}) {
    const std::string e = test::error_of([&] { parse_layouts(text, 2, "--layouts"); });
    EXPECT_NE(e.find(message), std::string::npos) << text << ": " << e;
  }
}

TEST(PlannerValidation, EachRunGetsItsLayoutsFlags) {
  PlanRequest r;
  r.world = 4;
  r.global_batch = 16;
  r.seq = 32;
  ValidationRun run;
  run.config = "c.json";
  run.steps = 5;
  run.threads = 2;
  const auto args = layout_train_args(r, {2, 1, 2, pipeline::ScheduleKind::ZeroBubbleH1, 1, 4}, run, "out/3");
  std::string joined;
  for (const auto& a : args) joined += a + " ";
  for (const char* want : {"--config c.json ", "--out_dir out/3 ", "--nproc 4 ", "--tp 1 ", "--pp 2 ",
                           "--batch_size 8 ", "--seq_len 32 ", "--max_steps 5 ", "--threads 2 ",
                           "--schedule zb1p ", "--micro_batches 4 ", "--parallel manual "})
    EXPECT_NE(joined.find(want), std::string::npos) << want << " in " << joined;
  EXPECT_EQ(joined.find("--data_dir"), std::string::npos);
}

TEST(PlannerValidation, MedianStepTimeComesFromTheMetricsLog) {
  testing::TempDir dir;
  const std::string path = dir / "metrics.jsonl";
  {
    std::ofstream out(path);
    // 1000 tokens a step: 1000 tokens/s is 1 s. Steps 1-2 (warm-up) are slow and not counted.
    for (const auto& [step, tps] : std::vector<std::pair<int, double>>{
             {1, 10}, {2, 10}, {3, 1000}, {4, 500}, {5, 2000}})
      out << nlohmann::json{{"type", "train"}, {"step", step}, {"tokens_per_s", tps}}.dump() << "\n";
    out << R"({"type": "eval", "step": 5, "train_loss": 1, "val_loss": 1})" << "\n";
  }
  EXPECT_DOUBLE_EQ(median_step_seconds(path, 3, 1000), 1.0);  // of 1, 2, 0.5
  EXPECT_NE(test::error_of([&] { median_step_seconds(path, 6, 1000); }).find("no training steps from step 6"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { median_step_seconds(dir / "none.jsonl", 3, 1000); }).find("no metrics log"),
            std::string::npos);
}

TEST(PlannerValidation, TableShowsPredictedMeasuredAndError) {
  const std::vector<ValidationRow> rows = {{{2, 1, 1}, 0.9, 1.0},
                                           {{1, 1, 2, pipeline::ScheduleKind::GPipe, 1, 2}, 1.5, 1.0}};
  const std::string t = validation_table(rows);
  EXPECT_NE(t.find("predicted_s"), std::string::npos) << t;
  EXPECT_NE(t.find("measured_s"), std::string::npos) << t;
  EXPECT_NE(t.find("dp 2 x tp 1 x pp 1"), std::string::npos) << t;
  EXPECT_NE(t.find("-10.0%"), std::string::npos) << t;
  EXPECT_NE(t.find("+50.0%"), std::string::npos) << t;
  EXPECT_NE(t.find("mean |error| 30.0%; within 15%: 1 of 2"), std::string::npos) << t;
  EXPECT_EQ(t.find("speedup"), std::string::npos) << t;
  // Against a 1-rank baseline predicted at 1.8 s and measured at 1.5 s: speedups 2.00 / 1.50
  // and 1.20 / 1.50.
  const ValidationRow one{{1, 1, 1}, 1.8, 1.5};
  const std::string b = validation_table(rows, &one);
  EXPECT_NE(b.find("-10.0%          2.00   1.50"), std::string::npos) << b;
  EXPECT_NE(b.find("+50.0%          1.20   1.50"), std::string::npos) << b;
}

// The real command: 3 layouts of 2 ranks (dp 2, tp 2, pp 2), 3 steps each.
TEST(PlannerValidation, PlanValidateTrainsLayoutsAndPrintsBothTimes) {
  testing::TempDir dir;
  const std::string config = testing::make_run(dir, "the quick brown fox jumps over the lazy dog. ", 40);
  const auto r = testing::loom_cli("plan --config " + config + " --nproc 2 --validate 3 --steps 3 --out_dir " +
                                       dir / "validate",
                                   240);
  ASSERT_EQ(r.rc, 0) << r.out;
  const size_t table = r.out.find("layout                                predicted_s   measured_s");
  ASSERT_NE(table, std::string::npos) << r.out;
  const std::regex row(R"((dp \d x tp \d x pp \d[^\n]*?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+[+-]\d+\.\d%)");
  std::set<std::string> shapes;
  const std::string rows = r.out.substr(table);
  for (auto it = std::sregex_iterator(rows.begin(), rows.end(), row); it != std::sregex_iterator(); ++it) {
    EXPECT_GT(std::stod((*it)[2]), 0) << (*it)[0];
    EXPECT_GT(std::stod((*it)[3]), 0) << (*it)[0];
    shapes.insert((*it)[1].str().substr(0, 18));
  }
  EXPECT_EQ(shapes, (std::set<std::string>{"dp 2 x tp 1 x pp 1", "dp 1 x tp 2 x pp 1", "dp 1 x tp 1 x pp 2"}))
      << r.out;
  EXPECT_NE(r.out.find("within 15%: "), std::string::npos) << r.out;
  // The 1-rank run of the same global batch, for the speedup columns.
  EXPECT_NE(r.out.find("measured dp 1 x tp 1 x pp 1 (1-rank baseline): "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("speedup pred   meas"), std::string::npos) << r.out;
}

TEST(PlannerValidation, BadValidationFlagsAreRefused) {
  testing::TempDir dir;
  const std::string config = testing::make_run(dir, "abc ", 40);
  for (const auto& [flags, message] : std::vector<std::pair<std::string, std::string>>{
           {"--validate 2 --steps 2", "--steps must be >= 3"},
           {"--validate -1", "--validate must be >= 0"},
           {"--layouts 4x1x1", "--layouts: '4x1x1' has 4 ranks, --nproc is 2"},
           {"--layouts 1x1x2:1f1b:3", "global batch 8 is not divisible by dp x micro_batches = 3"},
           // A run that fails (the 1-rank baseline, trained first) shows its own error.
           {"--layouts 2x1x1 --data_dir " + dir / "nothing",
            "training dp 1 x tp 1 x pp 1 failed (exit code 1); its output"}}) {
    const auto r = testing::loom_cli("plan --config " + config + " --nproc 2 --out_dir " + dir / "v" + " " + flags);
    EXPECT_NE(r.rc, 0) << flags;
    EXPECT_NE(r.out.find(message), std::string::npos) << flags << "\n" << r.out;
  }
}

}  // namespace
}  // namespace loom::planner
