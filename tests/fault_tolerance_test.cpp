// Fault-tolerance drills on the real binary: kill -9 / SIGSTOP a rank of a 2-rank job under
// --max_restarts and --resume auto, preempt it with SIGTERM, kill it during a background save;
// every drill must end with exactly the parameters of an uninterrupted run.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "drill_util.hpp"
#include "loom/io/file_io.hpp"
#include "loom/train/checkpoint.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::BackgroundJob;
using testing::make_run;
using testing::read_latest;
using testing::TempDir;

constexpr int kSteps = 48;

// A config whose steps take a few milliseconds (long enough to be hit between two steps),
// checkpointing every 4 steps. Returns the config path; runs write to <dir>/<name>.
std::string drill_config(const TempDir& dir) {
  const std::string cfg = make_run(dir, "the quick brown fox jumps over the lazy dog. ", 200,
                                   {{"max_steps", kSteps}, {"save_freq", 4}, {"eval_freq", 0},
                                    {"sample_freq", -1}, {"batch_size", 8}, {"seq_len", 64}});
  auto j = nlohmann::json::parse(std::ifstream(cfg));
  j["model"]["context_len"] = 64;
  j["model"]["d_model"] = 64;
  j["model"]["dropout"] = 0.1;  // the dropout RNG must survive the restarts too
  std::ofstream(cfg) << j.dump(2);
  return cfg;
}

std::string train_args(const std::string& cfg, const std::string& out, int nproc) {
  return std::string(LOOM_BINARY) + " train --config " + cfg + " --out_dir " + out + " --nproc " +
         std::to_string(nproc);
}

std::vector<uint8_t> final_model(const std::string& out) {
  return read_file(out + "/" + checkpoint_dir_name(kSteps) + "/model.safetensors");
}

// ctest runs each test in a process of its own: the uninterrupted reference runs are made only
// by the tests that compare with them.
class FaultDrill : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    cfg_ = drill_config(*dir_);
  }
  static void TearDownTestSuite() { delete dir_; }
  // The uninterrupted run on nproc ranks (made on first use).
  static std::string ref(int nproc) {
    const std::string out = *dir_ / ("reference" + std::to_string(nproc));
    if (!fs::exists(out + "/" + checkpoint_dir_name(kSteps))) {
      const auto r = testing::run_bounded(train_args(cfg_, out, nproc), 120);
      EXPECT_EQ(r.rc, 0) << r.out;
    }
    return out;
  }
  static std::string out(const std::string& name) { return *dir_ / name; }

  static TempDir* dir_;
  static std::string cfg_;
};
TempDir* FaultDrill::dir_ = nullptr;
std::string FaultDrill::cfg_;

// kill -9 of a random rank at 3 random steps (one job each) under --max_restarts 2 --resume
// auto: the job completes, reports the restart and the steps lost, and the final parameters are
// byte-equal to the uninterrupted run's.
TEST_F(FaultDrill, KillNineOfARandomRankIsRecoveredBitExactly) {
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 3; ++trial) {
    const int step = std::uniform_int_distribution<int>(6, kSteps - 12)(rng);
    const int victim = std::uniform_int_distribution<int>(0, 1)(rng);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": kill rank " + std::to_string(victim) +
                 " after step " + std::to_string(step));
    const std::string o = out("kill" + std::to_string(trial));
    BackgroundJob job(train_args(cfg_, o, 2) + " --resume auto --max_restarts 2", o + ".log");
    ASSERT_TRUE(testing::wait_for_step(o + "/metrics.jsonl", step, 60)) << job.output();
    const pid_t pid = testing::rank_pid(job.pid(), victim);
    ASSERT_GT(pid, 0) << job.output();
    kill(pid, SIGKILL);
    ASSERT_EQ(job.wait(90), 0) << job.output();
    const std::string log = job.output();
    EXPECT_NE(log.find("loom launch: rank " + std::to_string(victim) + " (pid " + std::to_string(pid) +
                       ") was killed by signal 9"), std::string::npos) << log;
    // (Step 4's checkpoint is written in the background: on a loaded machine it may not be
    // published yet when the kill comes at step 6, and the job then starts over.)
    const bool resumed = log.find("restart 1: resuming from " + o + "/step_") != std::string::npos;
    EXPECT_TRUE(resumed || (step < 8 && log.find("restart 1: no checkpoint yet") != std::string::npos)) << log;
    if (resumed) {
      EXPECT_NE(log.find(" lost since the checkpoint"), std::string::npos) << log;
    }
    EXPECT_EQ(final_model(o), final_model(ref(2)));
  }
}

// A stopped rank (SIGSTOP: alive, silent) is named by the other within LOOM_COMM_TIMEOUT; the
// launcher kills it and restarts the job, which completes with the uninterrupted parameters.
TEST_F(FaultDrill, StoppedRankIsNamedWithinTheTimeoutAndTheRestartCompletes) {
  const std::string o = out("stop");
  BackgroundJob job("LOOM_COMM_TIMEOUT=2 " + train_args(cfg_, o, 2) + " --resume auto --max_restarts 1",
                    o + ".log");
  ASSERT_TRUE(testing::wait_for_step(o + "/metrics.jsonl", 10, 60)) << job.output();
  const pid_t pid = testing::rank_pid(job.pid(), 1);
  ASSERT_GT(pid, 0);
  kill(pid, SIGSTOP);
  // Timeout 2 s + restart; not the 30 s grace: a stopped rank is killed at once. Timed to the
  // restart, not to the end of the job, whose remaining steps take longer in a slower (e.g.
  // sanitizer) build.
  EXPECT_TRUE(job.wait_for_output("restart 1: resuming from", 20)) << job.output();
  ASSERT_EQ(job.wait(90), 0) << job.output();
  const std::string log = job.output();
  EXPECT_NE(log.find("timed out waiting for rank 1"), std::string::npos) << log;
  EXPECT_EQ(final_model(o), final_model(ref(2)));
}

// SIGTERM to the launcher, or to one rank, at a random step: all ranks stop at one step, save
// it and exit 0; --resume auto then finishes the run with the uninterrupted parameters.
TEST_F(FaultDrill, PreemptionSavesTheCurrentStepExitsZeroAndResumesExactly) {
  std::mt19937 rng(std::random_device{}());
  for (const char* target : {"launcher", "rank 1"}) {
    SCOPED_TRACE(target);
    const std::string o = out(std::string("preempt-") + target[0]);
    const int step = std::uniform_int_distribution<int>(2, kSteps - 12)(rng);
    {
      BackgroundJob job(train_args(cfg_, o, 2) + " --resume auto", o + ".log");
      ASSERT_TRUE(testing::wait_for_step(o + "/metrics.jsonl", step, 60)) << job.output();
      kill(target[0] == 'l' ? job.pid() : testing::rank_pid(job.pid(), 1), SIGTERM);
      ASSERT_EQ(job.wait(60), 0) << job.output();
      const std::string log = job.output();
      const size_t at = log.find("preempted by a signal: saved the checkpoint of step ");
      ASSERT_NE(at, std::string::npos) << log;
      const int saved = std::stoi(log.substr(at + 52));
      EXPECT_GE(saved, step);
      EXPECT_LT(saved, kSteps);
      EXPECT_EQ(read_latest(o), checkpoint_dir_name(saved)) << log;
    }
    const auto r = testing::run_bounded(train_args(cfg_, o, 2) + " --resume auto", 60);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(final_model(o), final_model(ref(2)));
  }
}

// A second signal does not wait for the step boundary. Rank 1 is stopped, so rank 0, told to
// stop by a first SIGTERM, waits for it in the step's agreement; the second SIGTERM (sent once
// the first was handled: SIGTERM is no longer caught) ends rank 0 at once, and the launcher
// reports it.
bool catches_sigterm(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("SigCgt:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> (SIGTERM - 1)) & 1;
  return false;
}

TEST_F(FaultDrill, SecondSignalStopsARankAtOnce) {
  const std::string o = out("twice");
  BackgroundJob job(train_args(cfg_, o, 2) + " --max_steps 100000", o + ".log");
  ASSERT_TRUE(testing::wait_for_step(o + "/metrics.jsonl", 2, 60)) << job.output();
  const pid_t r0 = testing::rank_pid(job.pid(), 0), r1 = testing::rank_pid(job.pid(), 1);
  ASSERT_TRUE(r0 > 0 && r1 > 0);
  ASSERT_TRUE(catches_sigterm(r0));
  kill(r1, SIGSTOP);
  kill(r0, SIGTERM);
  for (int i = 0; i < 10000 && catches_sigterm(r0); ++i) usleep(1000);
  ASSERT_FALSE(catches_sigterm(r0));
  kill(r0, SIGTERM);
  EXPECT_EQ(job.wait(30), 128 + SIGTERM) << job.output();
  EXPECT_NE(job.output().find("rank 0 (pid " + std::to_string(r0) + ") was killed by signal 15"),
            std::string::npos) << job.output();
}

// Killed while the background writer is between writing step 8's files and publishing them:
// `latest` still names step 4, which loads, and resuming from it gives the uninterrupted result.
TEST_F(FaultDrill, KillDuringAsyncSaveLeavesThePreviousCheckpointLatest) {
  const std::string o = out("async-kill");
  const auto killed = testing::run_bounded(
      "env LOOM_FAULT_KILL_IN_SAVE=8 " + train_args(cfg_, o, 1), 60);
  EXPECT_EQ(killed.rc, 128 + SIGKILL) << killed.out;
  EXPECT_EQ(read_latest(o), "step_000004");
  EXPECT_TRUE(fs::exists(o + "/.tmp-step_000008/model.safetensors"));
  EXPECT_FALSE(fs::exists(o + "/step_000008"));
  const auto r = testing::run_bounded(train_args(cfg_, o, 1) + " --resume auto", 60);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from " + o + "/step_000004 at step 4"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(o + "/.tmp-step_000008"));
  EXPECT_EQ(final_model(o), final_model(ref(1)));
}

// --resume auto on an empty out_dir starts afresh; rank 0's lines are not prefixed under the
// launcher; config values are recorded as written (beta1 0.9, not 0.8999999761581421).
TEST_F(FaultDrill, ResumeAutoStartsAfreshPrintsPlainlyAndRecordsValuesAsWritten) {
  const std::string o = out("auto");
  const auto r = testing::run_bounded(train_args(cfg_, o, 2) + " --resume auto --max_steps 6", 60);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(std::ifstream(o + "/step_000004/state.json"));
  EXPECT_EQ(j["config"]["train"]["beta1"].dump(), "0.9");
  EXPECT_EQ(j["config"]["train"]["lr"].dump(), "0.003");
  EXPECT_EQ(r.out.find("resumed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nstep 6/6 | loss"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("[rank 0]"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace loom
