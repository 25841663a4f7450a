#include "loom/launch/capacity.hpp"

#include <sched.h>

#include <fstream>
#include <iomanip>
#include <sstream>

#include "loom/core/check.hpp"

namespace loom::launch {
namespace {

// MemAvailable in bytes (0 if /proc/meminfo does not say).
double available_memory() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    double kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

std::string gib(double bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << bytes / (1024.0 * 1024 * 1024) << " GiB";
  return os.str();
}

}  // namespace

HostCapacity host_capacity() {
  HostCapacity h;
  cpu_set_t set;
  CPU_ZERO(&set);
  h.cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  h.memory_bytes = available_memory();
  return h;
}

void check_job_fits(int nproc, double bytes_per_rank, const HostCapacity& host) {
  const long max_ranks = static_cast<long>(host.cores) * kRanksPerCore;
  LOOM_CHECK(nproc <= max_ranks, "--nproc ", nproc, ": this machine runs at most ", max_ranks,
             " local ranks (", host.cores, " cores x ", kRanksPerCore,
             " ranks per core); more would thrash instead of training. Use fewer ranks, or "
             "--oversubscribe to start them anyway");
  const double needed = bytes_per_rank * nproc;
  LOOM_CHECK(bytes_per_rank <= 0 || host.memory_bytes <= 0 || needed <= host.memory_bytes,
             "the job needs ", gib(needed), " (", nproc, " rank(s) x ", gib(bytes_per_rank),
             " planned by the memory model: see `loom memory`), but this machine has ",
             gib(host.memory_bytes), " available. Lower batch_size or seq_len, use --recompute, "
             "--zero or more tp/pp, or --oversubscribe to start it anyway");
}

}  // namespace loom::launch
