#pragma once
// Runs a shell command for the multi-process comm tests, bounded by `timeout -k`: returns its exit
// code, its stdout+stderr and how long it took.
#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace loom::test {

struct ProcessResult {
  int exit_code = -1;
  std::string output;
  double seconds = 0;
};

inline ProcessResult run_shell(const std::string& command, int timeout_s) {
  const std::string full = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 5 " +
                           std::to_string(timeout_s) + " bash -c '" + command + "' 2>&1";
  const auto t0 = std::chrono::steady_clock::now();
  ProcessResult r;
  FILE* p = popen(full.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) r.output.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

inline std::string loom() { return LOOM_BINARY; }

}  // namespace loom::test
