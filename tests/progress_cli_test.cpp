// Training progress as a user watches it: the step line's elapsed time and ETA, --log_every (the
// metrics log keeps every step), a resumed run's metrics.jsonl without a step twice, round tick
// values in `loom report`'s plot, and tokenize's carriage-return progress on terminals only.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "loom/train/metrics_report.hpp"
#include "loom/train/step_progress.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

const std::string kText = "the quick brown fox jumps over the lazy dog. ";

// The steps of the printed step lines ("step 3/10 | ...") of `out`, and the lines themselves.
std::map<int64_t, std::string> step_lines(const std::string& out) {
  std::map<int64_t, std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("step ", 0) == 0) lines[std::stoll(line.substr(5))] = line;
  return lines;
}

// How many entries of each (type, step) the metrics log holds.
std::map<std::pair<std::string, int64_t>, int> entries_per_step(const std::string& path) {
  std::map<std::pair<std::string, int64_t>, int> n;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    ++n[{j["type"].get<std::string>(), j["step"].get<int64_t>()}];
  }
  return n;
}

TEST(Progress, StepLineEveryLogEverySteps) {
  testing::TempDir dir;
  const std::string cfg = testing::make_run(dir, kText, 50, {{"max_steps", 10}, {"eval_freq", 0}});
  const auto r = testing::loom_cli("train --config " + cfg + " --log_every 3");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto lines = step_lines(r.out);
  std::vector<int64_t> printed;
  for (const auto& [step, line] : lines) printed.push_back(step);
  EXPECT_EQ(printed, (std::vector<int64_t>{1, 3, 6, 9, 10})) << r.out;  // first, every 3rd, last
  for (const auto& [step, line] : lines) {
    EXPECT_TRUE(std::regex_search(line, std::regex(R"( \| \d+s elapsed)"))) << line;
    // The last step has nothing left to estimate.
    EXPECT_EQ(line.find(" | ETA ") != std::string::npos, step < 10) << line;
  }
  // The metrics log keeps every step.
  EXPECT_EQ(testing::train_losses(dir / "out/metrics.jsonl").size(), 10u);
}

TEST(Progress, LogEveryIsValidated) {
  testing::TempDir dir;
  const std::string cfg = testing::make_run(dir, kText, 50, {{"max_steps", 10}});
  const auto r = testing::loom_cli("train --config " + cfg + " --log_every 0");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("log_every must be >= 1, got 0"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "out/metrics.jsonl"));
}

TEST(Progress, DurationsAndEtaFromThisRunsSteps) {
  EXPECT_EQ(format_duration(42.4), "42s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(2 * 3600 + 7 * 60 + 10), "2h07m");
  EXPECT_EQ(format_duration(3 * 86400 + 4 * 3600), "3d04h");
  // Resumed at step 100 at 50 s; 10 steps later 20 s have passed: 2 s a step, 90 steps left.
  const StepProgress p(100, 50, 200, 25);
  EXPECT_EQ(p.suffix(110, 70), " | 1m10s elapsed | ETA 3m00s");
  EXPECT_TRUE(p.prints(101));
  EXPECT_FALSE(p.prints(102));
  EXPECT_TRUE(p.prints(125));
  EXPECT_TRUE(p.prints(200));
}

// A run killed after step 8 whose last checkpoint is step 4 (its state: the log of 8 steps and
// the checkpoint of 4) resumes from 4: its log then holds every step exactly once.
TEST(Progress, ResumedRunLogsEveryStepOnce) {
  testing::TempDir dir;
  const std::string cfg =
      testing::make_run(dir, kText, 50, {{"max_steps", 8}, {"eval_freq", 4}, {"save_freq", 4}});
  ASSERT_EQ(testing::loom_cli("train --config " + cfg).rc, 0);
  const std::string log = dir / "out/metrics.jsonl";
  std::filesystem::remove_all(dir / "out/step_000008");
  { std::ofstream(log, std::ios::app) << R"({"type":"train","step":9,"lo)"; }  // cut short by the kill
  const auto r = testing::loom_cli("train --config " + cfg + " --resume " + dir / "out/step_000004" +
                                   " --max_steps 10");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto n = entries_per_step(log);
  for (int64_t step = 1; step <= 10; ++step) EXPECT_EQ(n.at({"train", step}), 1) << "step " << step;
  for (int64_t step : {4, 8}) {
    EXPECT_EQ(n.at({"eval", step}), 1) << "step " << step;
    EXPECT_EQ(n.at({"save", step}), 1) << "step " << step;
  }
  EXPECT_EQ(n.size(), 10u + 3 + 3) << "train 1-10, eval and save at 4, 8 and 10";
}

// Each label is the round multiple it stands for, the step 1, 2 or 5 x 10^k, the values
// consecutive multiples.
void expect_round(const std::vector<std::string>& labels, const std::string& what) {
  ASSERT_GE(labels.size(), 3u) << what;
  std::vector<double> v;
  for (const auto& l : labels) {
    EXPECT_TRUE(std::regex_match(l, std::regex(R"(-?(0|[1-9]\d*)(\.\d*[1-9])?(e-?\d+)?)"))) << what << ": " << l;
    v.push_back(std::stod(l));
  }
  const double step = v[1] - v[0];
  const double e = std::pow(10.0, std::floor(std::log10(step) + 1e-9));
  const double m = step / e;
  EXPECT_TRUE(std::fabs(m - 1) < 1e-6 || std::fabs(m - 2) < 1e-6 || std::fabs(m - 5) < 1e-6)
      << what << ": step " << step;
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_NEAR(v[i] / step, std::round(v[i] / step), 1e-6) << what << ": " << labels[i];
    if (i > 0) {
      EXPECT_NEAR(v[i] - v[i - 1], step, 1e-9 * std::max(1.0, std::fabs(v[i]))) << what;
    }
  }
}

TEST(Report, TickValuesAreRound) {
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{
           {7.339, 9.239}, {0, 6e-4}, {-3.95e-05, 6e-4}, {1234, 98765}, {1e-9, 3e-9}, {5, 5}, {-2.5, 0.3}}) {
    const AxisTicks t = round_ticks(lo, hi, 5, /*widen=*/true);
    expect_round(t.labels, std::to_string(lo) + ".." + std::to_string(hi));
    EXPECT_LE(t.values.front(), lo);
    EXPECT_GE(t.values.back(), hi);
  }
  EXPECT_EQ(round_ticks(0, 6e-4, 5, true).labels, (std::vector<std::string>{"0", "0.0002", "0.0004", "0.0006"}));
  EXPECT_EQ(round_ticks(1e-9, 3e-9, 5, true).labels,
            (std::vector<std::string>{"1e-9", "1.5e-9", "2e-9", "2.5e-9", "3e-9"}));
  EXPECT_EQ(round_ticks(1, 10, 6, false, 1).labels, (std::vector<std::string>{"2", "4", "6", "8", "10"}));

  // The plot of a run whose loss goes 9.239 -> 7.339 and lr 0 -> 6e-4.
  testing::TempDir dir;
  {
    std::ofstream log(dir / "metrics.jsonl");
    for (int step = 1; step <= 37; ++step)
      log << nlohmann::json{{"type", "train"}, {"step", step}, {"loss", 9.239 - (step - 1) * 1.9 / 36},
                            {"lr", 6e-4 * (step - 1) / 36}, {"grad_norm", 1},
                            {"tokens_per_s", 1234.5 + step}, {"elapsed_s", step}}
                 .dump()
          << "\n";
  }
  const std::string svg = metrics_svg(read_metrics(dir / "metrics.jsonl"), "t");
  // Three panels, one after the other, each title in bold: each panel's labels are round.
  size_t panels = 0;
  for (size_t at = svg.find("font-weight='bold'"); at != std::string::npos; ++panels) {
    const size_t next = svg.find("font-weight='bold'", at + 1);
    const std::string panel = svg.substr(at, next == std::string::npos ? std::string::npos : next - at);
    for (const char* axis : {"ytick", "xtick"}) {
      std::vector<std::string> labels;
      const std::regex label(std::string("class='") + axis + "'[^>]*>([^<]*)</text>");
      for (auto it = std::sregex_iterator(panel.begin(), panel.end(), label); it != std::sregex_iterator(); ++it)
        labels.push_back((*it)[1]);
      expect_round(labels, axis + std::string(" of panel ") + std::to_string(panels));
    }
    at = next;
  }
  EXPECT_EQ(panels, 3u) << svg;
}

TEST(TokenizeProgress, CarriageReturnsOnlyToATerminal) {
  testing::TempDir dir;
  {
    std::ofstream f(dir / "notes.txt");
    for (int i = 0; i < 200; ++i) f << "paragraph " << i << " of plain text.\n\n";
  }
  const std::string tokenize = std::string(LOOM_BINARY) + " tokenize --tokenizer byte --input " +
                               dir / "notes.txt" + " --out_dir ";
  const auto piped = testing::run_bounded(tokenize + dir / "a", 60);
  ASSERT_EQ(piped.rc, 0) << piped.out;
  EXPECT_EQ(piped.out.find('\r'), std::string::npos) << piped.out;
  // The same under a pseudo-terminal (script(1)) shows the progress line.
  if (std::system("command -v script > /dev/null 2>&1") != 0) GTEST_SKIP() << "no script(1)";
  const auto tty = testing::run_bounded("script -qec '" + tokenize + dir / "b" + "' /dev/null", 60);
  ASSERT_EQ(tty.rc, 0) << tty.out;
  EXPECT_NE(tty.out.find("\rtokenize: "), std::string::npos) << tty.out;
}

}  // namespace
}  // namespace loom
