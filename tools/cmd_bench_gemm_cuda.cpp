// `loom bench gemm-cuda`: the GPU's cuBLASLt matmul peak (bf16, TF32, f32), the yardstick of
// MFU on the GPU beside the datasheet peak (H100 SXM dense bf16: 989 TFLOP/s).
#include <cstdio>
#include <memory>
#include <sstream>

#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/device/device.hpp"
#ifdef LOOM_WITH_CUDA
#include "loom/kernels/cuda/matmul_peak.hpp"
#endif

namespace {
struct Options {
  int n = 8192;
  int reps = 20;
  std::string precisions = "bf16,tf32,f32";
};

int run(const Options& o) {
  loom::device::require_cuda("bench gemm-cuda");
#ifdef LOOM_WITH_CUDA
  namespace k = loom::kernels::cuda;
  std::stringstream list(o.precisions);
  for (std::string name; std::getline(list, name, ',');) {
    k::PeakPrecision p;
    if (name == "bf16")
      p = k::PeakPrecision::kBF16;
    else if (name == "tf32")
      p = k::PeakPrecision::kTF32;
    else if (name == "f32")
      p = k::PeakPrecision::kF32;
    else
      LOOM_FAIL("--precision: unknown precision '", name, "' (expected bf16, tf32 or f32)");
    const auto r = k::measure_matmul_peak(p, o.n, o.reps);
    std::printf("cuBLASLt %s %dx%dx%d: median %.1f TFLOP/s, best %.1f TFLOP/s over %d reps\n",
                k::peak_precision_name(p), r.n, r.n, r.n, r.tflops, r.best_tflops, r.reps);
  }
  return 0;
#else
  (void)o;
  return 1;  // unreachable: require_cuda throws in a build without CUDA
#endif
}
}  // namespace

static const bool registered = loom::cli::register_command(
    "bench gemm-cuda", "Measure the GPU's cuBLASLt matmul peak (bf16, tf32, f32)",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--n", o->n, "matrix size (n x n x n)")->capture_default_str();
      app.add_option("--reps", o->reps, "timed repetitions")->capture_default_str();
      app.add_option("--precision", o->precisions, "comma-separated: bf16, tf32, f32")
          ->capture_default_str();
      return [o] { return run(*o); };
    });
