#pragma once
// What this host offers a local job (cores it may run on, memory available now), and the
// refusal, before any rank starts, of a job that cannot fit it: more ranks than kRanksPerCore per
// core, or ranks whose planned memory together exceeds the available memory. --oversubscribe
// skips the refusal (the job then runs, slowly or into swap).
#include <string>

namespace loom::launch {

// Ranks per core beyond which a local job thrashes instead of training (each rank also runs
// OpenMP threads, a shm transport spinning on its peers, and a checkpoint writer).
inline constexpr int kRanksPerCore = 8;

struct HostCapacity {
  int cores = 1;              // CPUs this process may run on (its affinity mask)
  double memory_bytes = 0;    // MemAvailable of /proc/meminfo; 0 when unknown
};

HostCapacity host_capacity();

// Throws loom::Error, with the numbers (needed vs available) and --oversubscribe as the way to
// force it, when `nproc` ranks of `bytes_per_rank` each (0: not known) do not fit `host`.
void check_job_fits(int nproc, double bytes_per_rank, const HostCapacity& host);

}  // namespace loom::launch
