#include "loom/core/cpu_env.hpp"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace loom {

namespace {

// The OPENBLAS_CORETYPE this process should run with, or "" to leave it as it is.
std::string wanted_coretype() {
  const char* forced = std::getenv("LOOM_BLAS_CORETYPE");
  const char* current = std::getenv("OPENBLAS_CORETYPE");
  std::string wanted;
  if (forced != nullptr) {
    wanted = forced;
  } else {
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    const std::string cur = current ? current : "";
    const bool has_avx512_kernels =
        cur == "SkylakeX" || cur == "CooperLake" || cur == "SapphireRapids";
    if (!avx512 || has_avx512_kernels) return "";
    wanted = "SkylakeX";
  }
  if (current != nullptr && wanted == current) return "";
  return wanted;
}

}  // namespace

void reexec_with_fast_blas(int argc, char** argv) {
  if (std::getenv("LOOM_CPU_ENV_DONE") != nullptr) return;
  setenv("LOOM_CPU_ENV_DONE", "1", 1);
  bool changed = false;
  const std::string coretype = wanted_coretype();
  if (!coretype.empty()) {
    setenv("OPENBLAS_CORETYPE", coretype.c_str(), 1);
    changed = true;
  }
  // OpenMP loops and OpenBLAS's own pthreads alternate on the same cores. libgomp's default
  // keeps idle workers spinning after each parallel region, which steals the core from the
  // OpenBLAS thread that runs next: gpt2-small training ran at 54% of the sgemm peak with the
  // default and 73% with PASSIVE (idle workers sleep at once). libgomp reads the variable when
  // it loads, hence the re-exec. A value the user set is kept.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    changed = true;
  }
  if (!changed) return;
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  // execv only returns on failure: carry on with the default kernels.
}

void set_num_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

}  // namespace loom
