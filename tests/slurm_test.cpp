// Slurm: the rank environment srun gives every task maps to Loom's ranks, and the example
// scripts/slurm/train.sbatch passes its variables to `loom train` (srun replaced by a stub that
// prints what it would run: no Slurm here).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "loom/comm/environment.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom::testing {
namespace {

TEST(Slurm, SrunTaskVariablesGiveTheRank) {
  const std::map<std::string, std::string> vars = {
      {"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}, {"SLURM_NTASKS_PER_NODE", "2"}};
  for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  const auto env = comm::detect_environment();
  for (const auto& [k, v] : vars) ::unsetenv(k.c_str());
  EXPECT_EQ(env.launcher, comm::Launcher::Mpi);
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_world_size, 2);
}

// The message of what `f` throws ("" when it does not).
template <typename F>
std::string error_text(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Slurm, TasksPerNodeInSlurmsCompressedForm) {
  EXPECT_EQ(comm::slurm_tasks_on_node("4", -1, "V"), 4);
  EXPECT_EQ(comm::slurm_tasks_on_node("2(x4)", -1, "V"), 2);
  EXPECT_EQ(comm::slurm_tasks_on_node("2(x4)", 3, "V"), 2);
  for (int node : {0, 1, 2}) EXPECT_EQ(comm::slurm_tasks_on_node("2(x3),1", node, "V"), 2);
  EXPECT_EQ(comm::slurm_tasks_on_node("2(x3),1", 3, "V"), 1);
  EXPECT_EQ(comm::slurm_tasks_on_node("3,1(x2),5", 3, "V"), 5);
  // Nodes with different counts need to know which node this is.
  EXPECT_NE(error_text([] { comm::slurm_tasks_on_node("2(x3),1", -1, "V"); }).find("SLURM_NODEID"),
            std::string::npos);
  EXPECT_NE(error_text([] { comm::slurm_tasks_on_node("2(x3),1", 4, "V"); }).find("lists 4 node(s)"),
            std::string::npos);
  for (const char* bad : {"", "x", "2(x)", "2(x3", "2(3)", "2,", ",2", "0", "2(x0)", "2 ", "-1", "2(x3)1"})
    EXPECT_NE(error_text([&] { comm::slurm_tasks_on_node(bad, 0, "SLURM_NTASKS_PER_NODE"); })
                  .find("SLURM_NTASKS_PER_NODE must be a task count per node such as 4, 2(x3) or "
                        "2(x3),1, got '" + std::string(bad) + "'"),
              std::string::npos)
        << bad;
}

TEST(Slurm, SrunOnNodesWithDifferentTaskCounts) {
  const std::map<std::string, std::string> vars = {{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "7"},
                                                   {"SLURM_LOCALID", "0"}, {"SLURM_NODEID", "3"},
                                                   {"SLURM_NTASKS_PER_NODE", "2(x3),1"}};
  for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  const auto env = comm::detect_environment();
  ::setenv("SLURM_NTASKS_PER_NODE", "2(x3)junk", 1);
  const std::string refused = error_text([] { comm::detect_environment(); });
  for (const auto& [k, v] : vars) ::unsetenv(k.c_str());
  EXPECT_EQ(env.rank, 6);
  EXPECT_EQ(env.local_world_size, 1);
  EXPECT_NE(refused.find("SLURM_NTASKS_PER_NODE must be a task count per node"), std::string::npos)
      << refused;
}

TEST(Slurm, TrainSbatchHonoursItsVariables) {
  TempDir dir;
  std::ofstream(dir / "srun") << "#!/bin/sh\necho \"OMP_NUM_THREADS=$OMP_NUM_THREADS srun $*\"\n";
  std::filesystem::permissions(dir / "srun", std::filesystem::perms::owner_all);
  const std::string script = std::string(LOOM_SOURCE_DIR) + "/scripts/slurm/train.sbatch";
  const Result r = run_bounded("env PATH=" + dir.path() + ":$PATH SLURM_JOB_ID=42 SLURM_CPUS_PER_TASK=3 "
                               "CONFIG=c.json DATA_DIR=d TP=2 EXTRA='--zero 1' bash " + script, 30);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("OMP_NUM_THREADS=3 srun --mpi=pmix --kill-on-bad-exit=1 build/loom train "
                       "--config c.json --data_dir d --out_dir runs/slurm-42 --tp 2 --pp 1 "
                       "--threads 3 --resume auto --zero 1"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace loom::testing
