// Parameter servers under faults (the real CLI on shm, and under mpirun; bounded in time): in
// async and ssp mode a worker that dies (between messages or in the middle of its push) or hangs
// (SIGSTOP) is dropped, named, and the job completes with the others; a server that dies (even in
// the middle of a message) fails the job naming it, and `--resume auto` continues from its
// checkpoint; SIGTERM (preemption) saves the current step and exits 0.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "drill_util.hpp"
#include "loom/train/checkpoint.hpp"
#include "ps_test_util.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;

using PsFault = testing::PsTest;
using testing::Result;

TEST_F(PsFault, AnAsyncWorkerKilledMidRunIsDroppedAndTheJobCompletes) {
  const std::string out = dir_ / "async_kill";
  testing::BackgroundJob job(long_job(out, 3000, "--nproc 4 --ps 1 --ps_mode async"),
                             out + ".log");
  ASSERT_TRUE(testing::wait_for_step(out + "/metrics.jsonl", 30, 120)) << job.output();
  const pid_t victim = testing::rank_pid(job.pid(), 2);
  ASSERT_GT(victim, 0) << job.output();
  kill(victim, SIGKILL);
  ASSERT_EQ(job.wait(240), 0) << job.output();
  const std::string log = job.output();
  EXPECT_NE(log.find("loom launch: rank 2 (pid " + std::to_string(victim) +
                     ") was killed by signal 9 (Killed); the job goes on without it"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("ps: worker rank 2 is gone"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(out + "/step_003000/model.safetensors")) << log;
  EXPECT_EQ(staleness_of("async_kill")["workers_lost"], nlohmann::json::array({2}));
}

// Rank 2 of 3 ssp workers is stopped (alive, silent): the others wait for it at the gate until
// the server, after the comm timeout (3 s) without its push, drops it; they go on with the bound
// applying to them, the job completes, and the launcher kills the stopped rank at the end.
TEST_F(PsFault, AHungSspWorkerIsDroppedAfterTheTimeoutAndTheOthersGoOn) {
  const std::string out = dir_ / "ssp_hang";
  testing::BackgroundJob job(
      "LOOM_COMM_TIMEOUT=3 " +
          long_job(out, 300, "--nproc 4 --ps 1 --ps_mode ssp --staleness 1 --save_freq 0"),
      out + ".log");
  ASSERT_TRUE(testing::wait_for_step(out + "/metrics.jsonl", 20, 120)) << job.output();
  const pid_t victim = testing::rank_pid(job.pid(), 2);
  ASSERT_GT(victim, 0) << job.output();
  kill(victim, SIGSTOP);
  ASSERT_EQ(job.wait(180), 0) << job.output();
  const std::string log = job.output();
  EXPECT_NE(log.find("ps: worker rank 2 stopped answering (no push for 3 s, the comm timeout"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("loom launch: rank 2 (pid " + std::to_string(victim) +
                     ") is still running after the ranks it served ended; stopping it"),
            std::string::npos)
      << log;
  EXPECT_TRUE(fs::exists(out + "/step_000300/model.safetensors")) << log;
  const auto st = staleness_of("ssp_hang");
  EXPECT_EQ(st["workers_lost"], nlohmann::json::array({2})) << st.dump();
  EXPECT_EQ(total(st["clock_staleness"]), 300) << st.dump();
  EXPECT_LE(max_key(st["clock_staleness"]), 1) << st.dump();
}

// LOOM_FAULT_PS_CUT_MESSAGE: worker rank 3 dies after its 15th push's header reached server 0,
// before the gradient. 2 servers: server 0 discards the partial push, server 1 never gets it;
// both drop the worker and the async job completes with the other two.
TEST_F(PsFault, AWorkerDyingInTheMiddleOfItsPushIsDroppedAndTheJobCompletes) {
  const Result r = testing::run_bounded(
      "env LOOM_FAULT_PS_CUT_MESSAGE=15:3 " +
          long_job(dir_ / "cut_push", 120, "--nproc 5 --ps 2 --ps_mode async --save_freq 0"),
      180);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("loom launch: rank 3 (pid "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ps: worker rank 3 is gone in the middle of its push (the part received "
                       "is discarded)"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "cut_push/step_000120/model.safetensors")) << r.out;
  EXPECT_EQ(staleness_of("cut_push")["workers_lost"], nlohmann::json::array({3}));
}

// A hung worker under mpirun, which runs with --mca orte_enable_recovery 1 (without it mpirun
// ends the whole job when a rank dies): the worker ranks' messages to the servers go over the
// host's shared memory, where a silent rank is seen as on shm. The stopped worker is dropped
// after the comm timeout and, once training is over, killed by server 0, since every rank's
// MPI_Finalize would wait for it; the job completes and exits 0.
// DISABLED: in the full suite on 2 loaded cores it hung to its 180 s bound once in two runs (it
// passed in 4 s on the retry), like the mid-push case under Open MPI 4.1.4's recovery mode (see
// the README's parameter-server section). Run it with --gtest_also_run_disabled_tests.
TEST_F(PsFault, DISABLED_UnderMpirunAHungWorkerIsDroppedKilledAtTheEndAndTheJobCompletes) {
  if (!testing::have_mpirun()) GTEST_SKIP() << "mpirun not found";
  const std::string out = dir_ / "mpi_hang";
  testing::BackgroundJob job("LOOM_COMM_TIMEOUT=3 " + recovering_mpirun(4) +
                                 long_job(out, 3000, "--ps 1 --ps_mode async --save_freq 0"),
                             out + ".log");
  // Once rank 2 has pushed (mpirun may start it late; its pushes tell server 0 its pid), well
  // before the 3000 updates are done.
  ASSERT_TRUE(job.wait_for_output("| worker rank 2", 120)) << job.output();
  const pid_t victim = testing::rank_pid(job.pid(), 2, "OMPI_COMM_WORLD_RANK");
  ASSERT_GT(victim, 0) << job.output();
  kill(victim, SIGSTOP);
  ASSERT_EQ(job.wait(180), 0) << job.output();
  const std::string log = job.output();
  EXPECT_NE(log.find("ps: worker rank 2 stopped answering (no push for 3 s, the comm timeout"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("ps: killed worker rank 2 (pid " + std::to_string(victim) +
                     "), dropped but still running, so that mpirun can end the job"),
            std::string::npos)
      << log;
  EXPECT_TRUE(fs::exists(out + "/step_003000/model.safetensors")) << log;
  EXPECT_EQ(staleness_of("mpi_hang")["workers_lost"], nlohmann::json::array({2}));
}

TEST_F(PsFault, AKilledServerFailsTheJobNamingItAndItResumesFromItsCheckpoint) {
  const std::string out = dir_ / "server_kill";
  testing::BackgroundJob job(long_job(out, 400, "--nproc 4 --ps 2 --resume auto --max_restarts 1"),
                             out + ".log");
  ASSERT_TRUE(testing::wait_for_step(out + "/metrics.jsonl", 25, 120)) << job.output();
  const pid_t victim = testing::rank_pid(job.pid(), 1);
  ASSERT_GT(victim, 0) << job.output();
  kill(victim, SIGKILL);
  ASSERT_EQ(job.wait(240), 0) << job.output();
  const std::string log = job.output();
  EXPECT_NE(log.find("loom launch: rank 1 (pid " + std::to_string(victim) +
                     ") was killed by signal 9 (Killed); stopping the other ranks"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("restart 1: resuming from " + out + "/step_"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(out + "/step_000400/model.safetensors")) << log;
}

// Server rank 1 dies after the header of its 30th answer with parameters (async, 2 servers):
// the job fails naming it (the workers waiting for its parameters are not blamed).
TEST_F(PsFault, AServerDyingInTheMiddleOfAnAnswerFailsTheJobNamingIt) {
  const Result r = testing::run_bounded(
      "env LOOM_FAULT_PS_CUT_MESSAGE=30:1 " +
          long_job(dir_ / "cut_reply", 400, "--nproc 4 --ps 2 --ps_mode async"),
      180);
  EXPECT_EQ(r.rc, 128 + SIGKILL) << r.out;
  EXPECT_NE(r.out.find("loom launch: rank 1 (pid "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(") was killed by signal 9 (Killed); stopping the other ranks"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "cut_reply/step_000400")) << r.out;
}

// Preemption: SIGTERM to the launcher (sync, 2 servers: both stop after the same update) or to
// one worker alone (async: its next push carries it to the servers): the job saves the step it
// stopped at, says so and exits 0; `--resume auto` then finishes the run.
TEST_F(PsFault, PreemptionSavesTheCurrentStepAndResumeAutoFinishes) {
  for (const auto& [mode, target] :
       {std::pair<std::string, int>{"sync", -1}, {"async", 2}}) {
    SCOPED_TRACE(mode);
    const std::string out = dir_ / ("preempt_" + mode);
    const std::string job_args = long_job(out, 400, "--nproc 4 --ps 2 --ps_mode " + mode +
                                                        " --save_freq 0 --resume auto");
    {
      testing::BackgroundJob job(job_args, out + ".log");
      ASSERT_TRUE(testing::wait_for_step(out + "/metrics.jsonl", 15, 120)) << job.output();
      kill(target < 0 ? job.pid() : testing::rank_pid(job.pid(), target), SIGTERM);
      ASSERT_EQ(job.wait(120), 0) << job.output();
      const std::string log = job.output();
      const std::string said = "preempted by a signal: saved the checkpoint of step ";
      const size_t at = log.find(said);
      ASSERT_NE(at, std::string::npos) << log;
      const int saved = std::stoi(log.substr(at + said.size()));
      EXPECT_GE(saved, 15) << log;
      EXPECT_LT(saved, 400) << log;
      EXPECT_EQ(testing::read_latest(out), checkpoint_dir_name(saved)) << log;
    }
    const Result r = testing::run_bounded(job_args, 240);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("resumed from " + out + "/step_"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(out + "/step_000400/model.safetensors")) << r.out;
  }
}

}  // namespace
}  // namespace loom
