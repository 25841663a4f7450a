// Pipeline parallelism end to end: the real CLI at pp 2 (every schedule, interleaved with 2
// chunks per rank) and pp 4, and pp combined with tp and dp (up to 8 ranks, oversubscribed),
// against one rank with the same global batch over 20 steps; dropout under pp; a pp 2 x tp 2
// and an interleaved checkpoint resumed at other layouts; a stage killed mid-step; bad layouts
// refused before anything is written. The model has 4 blocks of 12 heads of width 4 and the
// byte vocabulary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "comm_process_util.hpp"
#include "layout_equivalence.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::Result;
using testing::train_losses;

// The "sample: ..." lines of a run's output.
std::vector<std::string> samples(const std::string& out) {
  std::vector<std::string> lines;
  for (size_t at = out.find("sample: "); at != std::string::npos; at = out.find("sample: ", at + 1))
    lines.push_back(out.substr(at, out.find('\n', at) - at));
  return lines;
}

class PipelineTrainCli : public testing::LayoutEquivalenceTest {
 protected:
  void SetUp() override { make_config(4); }
};

TEST_F(PipelineTrainCli, Pp2AndPp4WithEveryScheduleMatchOneRank) {
  for (const auto& [out, flags] :
       {std::pair<std::string, std::string>{"gpipe", "--nproc 2 --pp 2 --micro_batches 4 --schedule gpipe"},
        {"1f1b", "--nproc 2 --pp 2 --micro_batches 4 --schedule 1f1b"},
        {"zb1p", "--nproc 2 --pp 2 --micro_batches 2 --schedule zb1p"},
        {"pp4-gpipe", "--nproc 4 --pp 4 --micro_batches 4 --schedule gpipe"},
        {"pp4-1f1b", "--nproc 4 --pp 4 --micro_batches 4"},
        {"pp4-zb1p", "--nproc 4 --pp 4 --micro_batches 4 --schedule zb1p"}}) {
    const Result r = train(out, flags + " --batch_size 4");
    ASSERT_EQ(r.rc, 0) << r.out;
    expect_matches_reference(out);
    EXPECT_NE(r.out.find("pipeline: "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("eval step 20"), std::string::npos) << r.out;
  }
}

// pp 2 x 2 chunks per rank (alone, x tp 2, x dp 2): rank 0 holds blocks 0 and 2 (and the
// embedding), rank 1 blocks 1 and 3 (and the head); micro-batches go round the ranks twice.
TEST_F(PipelineTrainCli, InterleavedMatchesOneRankAndItsCheckpointResumesAtOneRank) {
  for (const auto& [out, flags] :
       {std::pair<std::string, std::string>{
            "inter", "--nproc 2 --pp 2 --schedule interleaved --virtual_stages 2 --micro_batches 4 --batch_size 4"},
        {"inter-tp2", "--nproc 4 --pp 2 --tp 2 --schedule interleaved --virtual-stages 2 --micro_batches 2 --batch_size 4"},
        {"inter-dp2", "--nproc 4 --pp 2 --schedule interleaved --virtual_stages 2 --micro_batches 2 --batch_size 2"}}) {
    const Result r = train(out, flags);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("pipeline: interleaved"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("stage 3: blocks 3"), std::string::npos) << r.out;  // 4 chunks of 1 block
    expect_matches_reference(out);
  }
  expect_resumes_like_the_run(
      "inter", {{"inter-one", "--batch_size 4"},
                {"inter-pp2", "--nproc 2 --pp 2 --schedule interleaved --virtual_stages 2 --batch_size 4"}});
}

// Dropout masks are a function of (step key, sample, layer, site, head), not of the layout: pp 2
// (micro-batches of 1 sequence, each stage drawing only its layers' masks) and pp 2 x tp 2 give
// the 1-rank run with dropout, and a resumed run continues with the same masks. The samples
// printed during training (generated through the chained stages) are the 1-rank run's.
TEST_F(PipelineTrainCli, DropoutUnderPpMatchesOneRankAndResumes) {
  const Result one = train("drop-one", "--batch_size 4 --dropout 0.1 --temperature 0.8");
  ASSERT_EQ(one.rc, 0) << one.out;
  const auto ref = train_losses(dir_ / "drop-one/metrics.jsonl");
  for (const auto& [out, flags] :
       {std::pair<std::string, std::string>{"drop-pp2", "--nproc 2 --pp 2 --micro_batches 4"},
        {"drop-pp2tp2", "--nproc 4 --pp 2 --tp 2 --schedule zb1p"},
        {"drop-inter", "--nproc 2 --pp 2 --schedule interleaved --virtual_stages 2"}}) {
    const Result r = train(out, flags + " --batch_size 4 --dropout 0.1 --temperature 0.8");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(samples(r.out), samples(one.out)) << r.out;
    EXPECT_EQ(samples(r.out).size(), 2u) << r.out;
    const auto got = train_losses(dir_ / out + "/metrics.jsonl");
    ASSERT_EQ(got.size(), 20u) << out;
    for (const auto& [step, loss] : ref)
      EXPECT_LT(std::abs(got.at(step) - loss) / loss, kTolerance) << out << " step " << step;
    EXPECT_LT(testing::relative_error(dir_ / out + "/step_000020/model.safetensors",
                                      dir_ / "drop-one/step_000020/model.safetensors"),
              kTolerance)
        << out;
  }
  // Without dropout the losses differ: the runs above did drop.
  const auto plain = train_losses(reference() + "/metrics.jsonl");
  EXPECT_GT(std::abs(plain.at(20) - ref.at(20)) / ref.at(20), 1e-3);
  expect_resumes_like_the_run("drop-pp2", {{"drop-pp2-one", "--batch_size 4 --dropout 0.1"}});
}

TEST_F(PipelineTrainCli, PpWithTpAndDpMatchesOneRank) {
  for (const auto& [out, flags] :
       {std::pair<std::string, std::string>{"pp2tp2", "--nproc 4 --pp 2 --tp 2 --batch_size 4"},
        {"pp2dp2", "--nproc 4 --pp 2 --batch_size 2 --micro_batches 2"},
        {"pp2dp2zero", "--nproc 4 --pp 2 --batch_size 2 --micro_batches 2 --zero 1"},
        {"pp2tp2dp2", "--nproc 8 --pp 2 --tp 2 --batch_size 2"}}) {
    const Result r = train(out, flags);
    ASSERT_EQ(r.rc, 0) << r.out;
    expect_matches_reference(out);
  }
}

TEST_F(PipelineTrainCli, MpirunPp2xTp2MatchesOneRank) {
  if (!testing::have_mpirun()) GTEST_SKIP() << "mpirun not found";
  const Result r = train("mpi", "--pp 2 --tp 2 --batch_size 4 --schedule zb1p", 4);
  ASSERT_EQ(r.rc, 0) << r.out;
  expect_matches_reference("mpi");
}

// The planner picks the layout, the ranks train it.
TEST_F(PipelineTrainCli, ParallelAutoTrainsThePlannersLayout) {
  const Result r = train("auto", "--nproc 4 --parallel auto --batch_size 2 --max_steps 6");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("parallel auto: dp "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("predicted "), std::string::npos) << r.out;
  EXPECT_EQ(train_losses(dir_ / "auto/metrics.jsonl").size(), 6u) << r.out;
}

// Saved at pp 2 x tp 2 (whole tensors), resumed at 1 rank and at pp 4: the next steps' losses
// are the uninterrupted run's.
TEST_F(PipelineTrainCli, Pp2xTp2CheckpointResumesAtOneRankAndAtPp4) {
  ASSERT_EQ(train("pp2tp2", "--nproc 4 --pp 2 --tp 2 --batch_size 4").rc, 0);
  expect_resumes_like_the_run("pp2tp2",
                              {{"one", "--batch_size 4"}, {"pp4", "--nproc 4 --pp 4 --batch_size 4"}});
}

// Refused before any work, naming the flag and what is valid; nothing is written.
TEST_F(PipelineTrainCli, BadLayoutsAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--nproc 8 --pp 8", "pp must be between 1 and n_layer (4)"},
      {"--nproc 2 --pp 2 --micro_batches 3 --batch_size 4", "micro_batches 3 must divide batch_size 4"},
      {"--nproc 4 --pp 3 --micro_batches 2", "--pp 3 must divide the world size 4"},
      {"--nproc 2 --pp 2 --schedule 2f2b", "unknown schedule '2f2b'"},
      {"--nproc 2 --pp 2 --schedule interleaved", "schedule interleaved needs pp > 1 and virtual_stages > 1"},
      {"--nproc 2 --pp 2 --schedule interleaved --virtual_stages 2 --micro_batches 3 --batch_size 3",
       "schedule interleaved: micro_batches 3 must be a multiple of pp 2"},
      {"--nproc 2 --pp 2 --schedule interleaved --virtual_stages 3 --micro_batches 4 --batch_size 4",
       "pp x virtual_stages = 2 x 3 model chunks need n_layer >= 6"},
      {"--nproc 2 --pp 2 --virtual_stages 2", "virtual_stages 2 needs schedule interleaved"}};
  for (const auto& [flags, message] : cases) {
    const Result r = train("bad", flags);
    EXPECT_NE(r.rc, 0) << flags;
    EXPECT_NE(r.out.find(message), std::string::npos) << flags << "\n" << r.out;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << flags << ": wrote its out_dir";
  }
}

// Stage 1 of 2, started by hand (so no launcher stops its peer), is killed while training: stage
// 0 fails within the timeout with an error naming rank 1.
TEST_F(PipelineTrainCli, AKilledStageMakesTheOtherFailNamingIt) {
  const std::string seg = "/loom-test-pp-kill-" + std::to_string(getpid());
  std::string script;
  for (int r = 0; r < 2; ++r)
    script += "LOOM_COMM_TIMEOUT=5 LOOM_SHM_NAME=" + seg + " LOOM_RANK=" + std::to_string(r) +
              " LOOM_WORLD_SIZE=2 " + test::loom() + " train --config " + config_ +
              " --out_dir " + dir_ / "kill" + " --pp 2 --batch_size 4 --max_steps 100000 " +
              "--eval_freq 0 --save_freq 0 --threads 1 > " + dir_ / ("log" + std::to_string(r)) +
              " 2>&1 & p" + std::to_string(r) + "=$!; ";
  // Once stage 0 has logged a few steps, stage 1 dies.
  script += "for i in $(seq 300); do grep -q \"^step 3/\" " + dir_ / "log0" +
            " && break; sleep 0.1; done; kill -9 $p1; wait $p0; echo exit=$?; cat " + dir_ / "log0";
  const auto r = test::run_shell(script, 90);
  EXPECT_NE(r.output.find("exit=75"), std::string::npos) << r.output;  // comm::kPeerFailureExitCode
  EXPECT_NE(r.output.find("rank 1 (pid"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("is gone"), std::string::npos) << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
}

}  // namespace
}  // namespace loom
