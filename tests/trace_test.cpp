// `loom train --trace FILE`: one valid Chrome trace JSON holding events of every rank, with each
// collective that ran during a step nested (in time) inside that step's event on the same rank.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "loom/core/trace.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

TEST(Trace, TwoRankRunWritesOneValidTraceWithCommNestedInSteps) {
  testing::TempDir dir;
  const std::string cfg = testing::make_run(dir, "the quick brown fox jumps over the lazy dog. ", 50,
                                            {{"max_steps", 6}, {"save_freq", 3}, {"eval_freq", 3}});
  const std::string path = dir / "run.trace.json";
  const auto r = testing::loom_cli("train --config " + cfg + " --nproc 2 --trace " + path);
  ASSERT_EQ(r.rc, 0) << r.out;
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "not valid JSON: " << path;
  ASSERT_TRUE(j.contains("traceEvents") && j["traceEvents"].is_array());

  std::map<std::pair<int, int64_t>, std::pair<double, double>> steps;  // (rank, step) -> [begin, end]
  std::set<int> ranks;
  std::map<std::string, int> names;
  for (const auto& e : j["traceEvents"]) {
    ASSERT_TRUE(e.contains("ph") && e.contains("pid") && e.contains("name")) << e.dump();
    ranks.insert(e["pid"].get<int>());
    if (e["ph"] != "X") continue;
    ASSERT_GE(e["dur"].get<double>(), 0) << e.dump();
    names[e["name"].get<std::string>().substr(0, 9)]++;
    names[e["name"].get<std::string>()]++;
    if (e["name"] == "step")
      steps[{e["pid"], e["args"]["step"]}] = {e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>()};
  }
  EXPECT_EQ(ranks, (std::set<int>{0, 1}));
  EXPECT_EQ(steps.size(), 12u);
  // Backward per block (2 blocks), and of the LM head + ln_f and the embeddings: once per step
  // and rank.
  for (const char* n : {"backward h.0", "backward h.1", "backward ln_f.weight", "backward wte.weight"})
    EXPECT_EQ(names[n], 12) << n;
  for (const char* n : {"forward", "backward", "optimizer", "allreduce", "evaluate", "save", "checkpoin"})
    EXPECT_GT(names[n], 0) << n;
  // Forward per block (training steps, plus the evaluation's forwards) and every kernel's forward
  // and backward ("kernel fwd" / "kernel bwd" events, named like loom bench train's rows).
  for (const char* n : {"forward h.0", "forward h.1"}) EXPECT_GE(names[n], 12) << n;
  std::map<std::string, int> kernel_events;
  for (const auto& e : j["traceEvents"])
    if (e["ph"] == "X" && e["cat"].get<std::string>().rfind("kernel", 0) == 0)
      kernel_events[e["cat"].get<std::string>() + " " + e["name"].get<std::string>()]++;
  for (const char* n : {"kernel fwd matmul qkv", "kernel bwd matmul qkv", "kernel fwd attention",
                        "kernel bwd attention", "kernel fwd lm head", "kernel bwd softmax+ce"})
    EXPECT_GE(kernel_events[n], 12) << n;
  int nested = 0;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] != "X" || e["cat"] != "comm" || !e.contains("args")) continue;
    const auto it = steps.find({e["pid"], e["args"]["step"]});
    ASSERT_NE(it, steps.end()) << e.dump();
    const double b = e["ts"].get<double>(), end = b + e["dur"].get<double>();
    EXPECT_GE(b, it->second.first) << e.dump();
    EXPECT_LE(end, it->second.second + 1) << e.dump();  // 1 us: the events' rounding
    ++nested;
  }
  EXPECT_GE(nested, 12 * 2);  // at least the gradient all-reduce and the loss sum of each step
}

TEST(Trace, OffRecordsNothing) {
  ASSERT_FALSE(trace::enabled());
  { trace::Scope s("x", "test"); }
  size_t n = 1;
  trace::events_json(&n);
  EXPECT_EQ(n, 0u);
  trace::enable(0);
  { trace::Scope s("x", "test"); }
  trace::events_json(&n);
  EXPECT_EQ(n, 1u);
  trace::disable();
}

}  // namespace
}  // namespace loom
