// Parameter servers end to end (the real CLI, shm via --nproc, Open MPI via mpirun): sync mode
// with 1 and 2 servers is all-reduce data parallelism at the same global batch (losses, final
// parameters and moments); ssp keeps every applied gradient within its staleness bound with a
// straggler present (and s = 0 is lock-step), while async is unbounded; the straggler knob slows
// all-reduce data parallelism too; bad layouts are refused before any rank starts. Faults:
// ps_fault_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "loom/train/checkpoint.hpp"
#include "ps_test_util.hpp"

namespace loom {
namespace {
namespace fs = std::filesystem;
using testing::have_mpirun;
using testing::Result;

using PsCli = testing::PsTest;

TEST_F(PsCli, SyncWithOneAndTwoServersMatchesAllReduceDataParallelism) {
  // 2 workers x batch 2 = the reference's global batch of 4.
  for (const auto& [out, flags] :
       {std::pair<std::string, std::string>{"ps1", "--nproc 3 --ps 1 --batch_size 2"},
        {"ps2", "--nproc 4 --ps 2 --batch_size 2"}}) {
    const Result r = train(out, flags);
    ASSERT_EQ(r.rc, 0) << r.out;
    expect_matches_reference(out);
    EXPECT_TRUE(fs::exists(dir_ / out + "/step_000010/model.safetensors")) << out;
    const auto st = staleness_of(out);
    ASSERT_TRUE(st.is_object()) << out << ": no ps_staleness record";
    EXPECT_EQ(st["clock_staleness"], nlohmann::json({{"0", 40}})) << st.dump();
    EXPECT_EQ(st["update_staleness"], nlohmann::json({{"0", 40}})) << st.dump();
  }
}

// The median tokens/s of a run's steps (metrics.jsonl).
double median_tokens_per_s(const std::string& metrics) {
  std::vector<double> rates;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") rates.push_back(j["tokens_per_s"].get<double>());
  }
  if (rates.empty()) return 0;
  std::nth_element(rates.begin(), rates.begin() + rates.size() / 2, rates.end());
  return rates[rates.size() / 2];
}

// The straggler knob without servers (bench ps's all-reduce row): every step of all-reduce data
// parallelism waits for the slow rank (a 40x straggler makes the steps several times slower; the
// margin covers a loaded machine), and the training is the same.
TEST_F(PsCli, AllReduceWaitsForAStragglerEveryStepAndTrainsTheSame) {
  const Result fast = train("dp", "--nproc 2 --batch_size 2");
  ASSERT_EQ(fast.rc, 0) << fast.out;
  const Result slow = train("dp_slow", "--nproc 2 --batch_size 2 --straggler 1:40");
  ASSERT_EQ(slow.rc, 0) << slow.out;
  expect_matches_reference("dp_slow");
  const double fast_rate = median_tokens_per_s(dir_ / "dp/metrics.jsonl");
  const double slow_rate = median_tokens_per_s(dir_ / "dp_slow/metrics.jsonl");
  EXPECT_GT(fast_rate, 5 * slow_rate) << fast_rate << " tokens/s without, " << slow_rate << " with";
}

TEST_F(PsCli, MpirunSyncMatchesAllReduceAndSspKeepsItsBound) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not found";
  const Result r = train("mpi_ps2", "--ps 2 --batch_size 2", /*mpi_ranks=*/4);
  ASSERT_EQ(r.rc, 0) << r.out;
  expect_matches_reference("mpi_ps2");
  // 2 servers, 3 workers (one 3x slow) under MPI_Iprobe's receive from any peer.
  const Result s = train("mpi_ssp", "--ps 2 --batch_size 1 --max_steps 60 --ps_mode ssp "
                         "--staleness 1 --straggler 2:3", /*mpi_ranks=*/5);
  ASSERT_EQ(s.rc, 0) << s.out;
  const auto st = staleness_of("mpi_ssp");
  EXPECT_EQ(total(st["clock_staleness"]), 60) << st.dump();
  EXPECT_EQ(max_key(st["clock_staleness"]), 1) << st.dump();
  EXPECT_TRUE(fs::exists(dir_ / "mpi_ssp/step_000060/model.safetensors"));
}

TEST_F(PsCli, SspBoundsStalenessWithAStragglerAndZeroIsLockStep) {
  // 3 workers, rank 1 three times as slow. ssp s = 1: no applied gradient lacks more than one of
  // the slowest worker's steps, and the fast workers do run that one step ahead; s = 0 never lets
  // one run ahead; async lets them run further.
  const std::string base = "--nproc 4 --ps 1 --batch_size 1 --max_steps 45 --save_freq 0 "
                           "--straggler 1:3 ";
  for (const auto& [out, mode, bound] :
       {std::tuple<std::string, std::string, int64_t>{"ssp1", "--ps_mode ssp --staleness 1", 1},
        {"ssp0", "--ps_mode ssp --staleness 0", 0}}) {
    const Result r = train(out, base + mode);
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto st = staleness_of(out);
    ASSERT_TRUE(st.is_object()) << out << ": no ps_staleness record\n" << r.out;
    EXPECT_EQ(total(st["clock_staleness"]), 45) << st.dump();
    EXPECT_EQ(max_key(st["clock_staleness"]), bound) << out << ": " << st.dump();
    // Each update between a worker's pull and its push is another worker's step: at most
    // (workers - 1) x (2s + 1) of them.
    EXPECT_LE(max_key(st["update_staleness"]), 2 * (2 * bound + 1)) << out << ": " << st.dump();
    EXPECT_NE(r.out.find("ps: rank 0 server, ranks 1..3 workers, mode ssp"), std::string::npos) << r.out;
  }
  const Result r = train("async", base + "--ps_mode async");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_GT(max_key(staleness_of("async")["clock_staleness"]), 1) << staleness_of("async").dump();
}

TEST_F(PsCli, CheckpointsResumeUnderAllReduceDataParallelismAndTheOtherWayRound) {
  const Result r = train("ps1", "--nproc 3 --ps 1 --batch_size 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  // A PS checkpoint continues as 2 data-parallel ranks and as 1 rank; the 1-rank run's
  // checkpoint continues under 2 servers.
  expect_resumes_like_the_run("ps1", {{"ps_to_dp2", "--nproc 2 --batch_size 2"},
                                      {"ps_to_ps2", "--nproc 4 --ps 2 --batch_size 2"}});
  reference();
  expect_resumes_like_the_run("ref", {{"ref_to_ps2", "--nproc 4 --ps 2 --batch_size 2"}});
}

// Batches applied per worker (world rank) in a run's console, up to update `up_to`: each update
// line names its worker ("step 12/60 | ... | worker rank 2").
std::map<int, int64_t> applied_per_worker(const std::string& log, int64_t up_to) {
  static const std::regex line(R"(^step (\d+)/\d+ .*\| worker rank (\d+)$)");
  std::map<int, int64_t> n;
  std::istringstream in(log);
  std::smatch m;
  for (std::string l; std::getline(in, l);)
    if (std::regex_match(l, m, line) && std::stoll(m[1]) <= up_to) ++n[std::stoi(m[2])];
  return n;
}

// Each worker's batches consumed by a checkpoint's "ps_workers" positions (world rank of worker
// w is w + 1), all in the first epoch; samples count over all 3 workers at batch 1.
std::map<int, int64_t> saved_positions(const std::string& dir) {
  const CheckpointState state = read_checkpoint_state(dir);
  const nlohmann::json& workers = state.layout.at("ps_workers");
  std::map<int, int64_t> p;
  for (size_t w = 0; w < workers.size(); ++w) {
    EXPECT_EQ(workers[w]["epoch"], 0) << dir;
    p[static_cast<int>(w) + 1] = workers[w]["samples"].get<int64_t>() / 3;
  }
  return p;
}

// An async checkpoint holds each worker's own data position (after its last batch applied), and
// a run resumed from it continues every worker there: worker w's position is always the number
// of its batches applied so far, before and after the resume, so no batch is seen twice or
// skipped. 3 workers, one 3x slow, so their positions differ (resuming every worker at the one
// furthest behind fails this).
TEST_F(PsCli, AsyncResumeContinuesEveryWorkerWhereItWas) {
  // seq_len 8: over 60 windows per worker, so no worker starts a second epoch.
  const std::string flags = "--nproc 4 --ps 1 --ps_mode async --batch_size 1 --seq_len 8 "
                            "--straggler 2:3 --save_freq 30 --max_steps 60";
  const Result a = train("async_a", flags);
  ASSERT_EQ(a.rc, 0) << a.out;
  const Result b = train("async_b", flags + " --resume " + (dir_ / "async_a/step_000030"));
  ASSERT_EQ(b.rc, 0) << b.out;
  const std::map<int, int64_t> saved = saved_positions(dir_ / "async_a/step_000030");
  std::map<int, int64_t> total = {{1, 0}, {2, 0}, {3, 0}};  // a worker may not have had a turn
  for (const auto& [rank, n] : applied_per_worker(a.out, 30)) total[rank] += n;
  EXPECT_EQ(saved, total) << a.out;
  std::set<int64_t> distinct;
  for (const auto& [rank, n] : saved) distinct.insert(n);
  EXPECT_GT(distinct.size(), 1u) << "the workers' positions should differ: " << a.out;
  for (const auto& [rank, n] : applied_per_worker(b.out, 60)) total[rank] += n;
  EXPECT_EQ(saved_positions(dir_ / "async_b/step_000060"), total) << b.out;
}

TEST_F(PsCli, BadLayoutsAreRefusedBeforeAnyRankStarts) {
  const std::pair<std::string, std::string> cases[] = {
      {"--nproc 2 --ps 2", "--ps 2 needs at least one worker: the job has 2 rank(s)"},
      {"--nproc 3 --ps 1 --staleness 2", "--staleness 2 needs --ps_mode ssp (ps_mode is sync)"},
      {"--nproc 3 --ps 1 --ps_mode ssp --staleness -2", "staleness must be >= 0, got -2"},
      {"--nproc 3 --ps 1 --ps_mode ssp", "ps_mode ssp needs --staleness S"},
      {"--nproc 3 --ps 1 --straggler 0:3", "--straggler 0:3: rank 0 is not a worker; the workers are ranks 1..2"},
      {"--nproc 3 --ps 1 --straggler 1:x", "--straggler 1:x: expected RANK:FACTOR"},
      {"--nproc 2 --straggler 2:3", "--straggler 2:3: rank 2 is not in the job; its ranks are 0..1"},
      {"--nproc 3 --ps 1 --ps_mode lazy", "--ps_mode must be sync, async or ssp, got 'lazy'"},
      {"--nproc 4 --ps 2 --tp 2", "--ps 2 cannot be combined with --tp 2"},
      {"--nproc 3 --ps 1 --zero 1", "cannot be combined with --tp 1, --pp 1 or --zero 1"},
      {"--nproc 2 --ps_mode async", "--ps_mode async needs parameter servers (--ps S > 0)"},
      {"--nproc 2:4 --ps 1", "--ps 1 cannot be combined with an elastic --nproc MIN:MAX"},
  };
  for (const auto& [flags, message] : cases) {
    const Result r = train("bad", flags);
    EXPECT_NE(r.rc, 0) << flags << "\n" << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << flags << "\n" << r.out;
    EXPECT_EQ(r.out.find("[rank"), std::string::npos) << flags << ": a rank started\n" << r.out;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << flags;
  }
  // LOOM_STRAGGLER is read like the flag.
  const Result r = testing::run_bounded("env LOOM_STRAGGLER=0:2 " + std::string(LOOM_BINARY) +
                                            " train --config " + config_ + " --out_dir " +
                                            (dir_ / "bad") + " --nproc 3 --ps 1",
                                        60);
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("rank 0 is not a worker"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

TEST_F(PsCli, InfoNamesTheRoles) {
  const Result ok = testing::loom_cli("info --nproc 6 --ps 2", 60);
  ASSERT_EQ(ok.rc, 0) << ok.out;
  EXPECT_NE(ok.out.find("parameter servers: ranks 0..1 servers, ranks 2..5 workers"), std::string::npos)
      << ok.out;
  const Result bad = testing::loom_cli("info --nproc 2 --ps 2", 60);
  EXPECT_NE(bad.rc, 0) << bad.out;
  EXPECT_NE(bad.out.find("--ps 2 needs at least one worker"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace loom
