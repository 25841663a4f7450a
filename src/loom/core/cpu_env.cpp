#include "loom/core/cpu_env.hpp"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace loom {

void reexec_with_cpu_env(int argc, char** argv) {
  if (std::getenv("LOOM_CPU_ENV_DONE") != nullptr) return;
  setenv("LOOM_CPU_ENV_DONE", "1", 1);
  // libgomp's default keeps idle workers spinning after each parallel region. On a machine whose
  // cores are shared (other ranks, other jobs, OpenBLAS's own pthreads) the spinning steals the
  // cores from the threads with work. Measured with `loom bench train` (gpt2-small, B=4, T=256,
  // 2 threads) on a loaded 2-core VM: 27.0 s per f32 step with OMP_WAIT_POLICY=active, 4.4 s and
  // 12.6 s in two runs with PASSIVE (idle workers sleep at once): noisy, but spinning never won.
  // A value the user set is kept.
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  // execv only returns on failure: carry on with the default policy.
}

void set_num_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

}  // namespace loom
