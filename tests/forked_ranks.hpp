#pragma once
// Runs a function as the ranks of a multi-process job inside a test: forks `world` children
// joined by a fresh shm segment (the variables `loom launch` would set), each calling fn with
// its world communicator. A child's exit code is fn's return value, 1 if it threw (its message
// is kept), or 128 + signal. Children still running after timeout_s are killed, so a hang
// fails the test instead of stalling it.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/cpu_env.hpp"
#include "temp_dir.hpp"

namespace loom::testing {

struct RankOutcome {
  int exit_code = -1;
  std::string error;  // the exception message of a child that threw
};

inline std::vector<RankOutcome> run_forked_ranks(int world, double timeout_s,
                                                 const std::function<int(comm::Communicator&)>& fn,
                                                 double comm_timeout_s = 10) {
  TempDir dir;
  const std::string seg = "/loom-test-forked-" + std::to_string(getpid());
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      setenv("LOOM_SHM_NAME", seg.c_str(), 1);
      setenv("LOOM_RANK", std::to_string(r).c_str(), 1);
      setenv("LOOM_WORLD_SIZE", std::to_string(world).c_str(), 1);
      setenv("LOOM_COMM_TIMEOUT", std::to_string(comm_timeout_s).c_str(), 1);
      int rc = 1;
      try {
        set_num_threads(1);
        auto comm = comm::communicator_from_env();
        rc = fn(*comm);
      } catch (const std::exception& e) {
        std::ofstream(dir / ("error." + std::to_string(r))) << e.what();
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
      }
      std::fflush(nullptr);
      _exit(rc);  // skip the test framework's teardown in the child
    }
    pids.push_back(pid);
  }
  std::vector<RankOutcome> out(world);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int left = world;
  while (left > 0) {
    for (int r = 0; r < world; ++r) {
      if (pids[r] < 0) continue;
      int status = 0;
      if (waitpid(pids[r], &status, WNOHANG) != pids[r]) continue;
      out[r].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pids[r] = -1;
      --left;
    }
    if (left > 0 && std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < world; ++r)
        if (pids[r] > 0) {
          kill(pids[r], SIGKILL);
          waitpid(pids[r], nullptr, 0);
          out[r].exit_code = 124;  // as timeout(1) says
          pids[r] = -1;
        }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int r = 0; r < world; ++r) {
    std::ifstream in(dir / ("error." + std::to_string(r)));
    std::stringstream ss;
    ss << in.rdbuf();
    out[r].error = ss.str();
  }
  shm_unlink(seg.c_str());
  return out;
}

}  // namespace loom::testing
