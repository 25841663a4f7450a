#include "bench/bench_job.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "loom/core/check.hpp"
#include "loom/launch/launcher.hpp"

namespace loom::parallel {

std::string run_bench_job(int nproc, std::vector<std::string> args, const std::string& program,
                          const std::string& what) {
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("loom-bench-" + std::to_string(getpid()) + ".json"))
                              .string();
  std::filesystem::remove(out);
  args.insert(args.end(), {"--worker_out", out});
  launch::LaunchOptions lo;
  lo.program = program;
  const int rc = launch::launch_local(nproc, args, lo);
  LOOM_CHECK(rc == 0, what, " failed (exit code ", rc, ")");
  std::ifstream in(out);
  std::string line;
  LOOM_CHECK(in && std::getline(in, line), what, " wrote no result to ", out);
  std::filesystem::remove(out);
  return line;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace loom::parallel
