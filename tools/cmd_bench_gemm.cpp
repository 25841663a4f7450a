// `loom bench gemm`: the machine's sgemm peak (the yardstick of `loom bench train`'s MFU).
#include <cstdio>
#include <memory>

#include "command_registry.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/kernels/cpu/gemm_peak.hpp"

extern "C" char* openblas_get_corename();

namespace {
struct Options {
  int n = 2048;
  int reps = 10;
  int threads = 0;
};
}  // namespace

static const bool registered = loom::cli::register_command(
    "bench gemm", "Measure the sgemm peak (large square cblas_sgemm)", [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--n", o->n, "matrix size (n x n x n)")->capture_default_str();
      app.add_option("--reps", o->reps, "timed repetitions")->capture_default_str();
      app.add_option("--threads", o->threads, "threads (0: default)")->capture_default_str();
      return [o] {
        loom::set_num_threads(o->threads);
        const auto p = loom::kernels::measure_sgemm_peak(o->n, o->reps);
        std::printf("sgemm %dx%dx%d (%s kernels): median %.1f GFLOP/s, best %.1f GFLOP/s over "
                    "%d reps\n",
                    p.n, p.n, p.n, openblas_get_corename(), p.gflops, p.best_gflops, p.reps);
        return 0;
      };
    });
