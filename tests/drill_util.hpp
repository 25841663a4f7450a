#pragma once
// Helpers for the fault-tolerance drills: start `loom` in the background, wait until its metrics
// log reaches a step, find the pid of one of its ranks, signal it, and wait for the job, all
// bounded in time.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loom/train/metrics_log.hpp"

namespace loom::testing {

class BackgroundJob {
 public:
  // Runs `LOOM_BINARY args` through the shell (env assignments may precede it), output to log.
  BackgroundJob(const std::string& args, const std::string& log) : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);  // the drill signals exactly whom it means to
      const std::string cmd = "exec env " + args + " > " + log + " 2>&1";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~BackgroundJob() {
    if (pid_ > 0 && !done_) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

  // Exit code (128 + signal for a signal), or -1 when it is still running after timeout_s (it
  // is then killed).
  int wait(double timeout_s) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > end) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    done_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // Whether the log shows `text` within timeout_s.
  bool wait_for_output(const std::string& text, double timeout_s) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (output().find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  std::string output() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  bool done_ = false;
};

// Waits until the metrics log at `metrics` shows a train step >= step; false after timeout_s.
inline bool wait_for_step(const std::string& metrics, int64_t step, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < end) {
    if (last_logged_step(metrics) >= step) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// The pid of the child of `parent` that runs rank `rank` (its LOOM_RANK; under mpirun pass
// "OMPI_COMM_WORLD_RANK"), or -1.
inline pid_t rank_pid(pid_t parent, int rank, const std::string& variable = "LOOM_RANK") {
  std::ifstream children("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
  for (pid_t pid; children >> pid;) {
    std::ifstream env("/proc/" + std::to_string(pid) + "/environ");
    std::string all((std::istreambuf_iterator<char>(env)), {});
    if (all.find(variable + "=" + std::to_string(rank) + '\0') != std::string::npos) return pid;
  }
  return -1;
}

inline std::string read_latest(const std::string& out_dir) {
  std::string name;
  std::ifstream(out_dir + "/latest") >> name;
  return name;
}

}  // namespace loom::testing
