// `loom bench gemm`: OpenBLAS f32 vs oneDNN f32 vs oneDNN bf16 on a square product (the peak
// that `loom bench train`'s MFU is measured against) and on the GEMM shapes of a GPT-2 step.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command_registry.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/kernels/cpu/gemm_peak.hpp"

extern "C" char* openblas_get_corename();

namespace {

using loom::kernels::GemmShape;
using loom::kernels::MatmulBackend;
using loom::kernels::MatmulPrecision;

struct Options {
  int n = 2048;
  int reps = 5;
  int threads = 0;
  int rows = 1024;  // B * T of the GPT-2 shapes (4 x 256)
  int d_model = 768;
  int vocab = 50257;
};

struct Row {
  std::string name;
  GemmShape shape;
};

// The products of one GPT-2 training step (gpt2-small by default), as the kernels issue them.
std::vector<Row> gpt2_shapes(const Options& o) {
  const int N = o.rows, C = o.d_model, V = o.vocab;
  return {
      {"qkv fwd", {N, 3 * C, C}},
      {"qkv bwd dx", {N, C, 3 * C, false, true}},
      {"qkv bwd dw", {C, 3 * C, N, true, false}},
      {"attn.proj fwd", {N, C, C}},
      {"fc fwd", {N, 4 * C, C}},
      {"fc bwd dx", {N, C, 4 * C, false, true}},
      {"fc bwd dw", {C, 4 * C, N, true, false}},
      {"mlp.proj fwd", {N, C, 4 * C}},
      {"mlp.proj bwd dw", {4 * C, C, N, true, false}},
      {"lm_head fwd", {N, V, C, false, true}},
      {"lm_head bwd dx", {N, C, V}},
      {"lm_head bwd dw", {V, C, N, true, false}},
  };
}

void print_row(const std::string& name, const GemmShape& s, int reps, bool bf16) {
  using loom::kernels::measure_gemm;
  const double blas = measure_gemm(MatmulBackend::kOpenBLAS, MatmulPrecision::kF32, s, reps).gflops;
  const double dnnl = measure_gemm(MatmulBackend::kOneDNN, MatmulPrecision::kF32, s, reps).gflops;
  char shape[64];
  std::snprintf(shape, sizeof shape, "%dx%dx%d %c%c", s.M, s.N, s.K, s.trans_a ? 't' : 'n',
                s.trans_b ? 't' : 'n');
  if (!bf16) {
    std::printf("%-16s %-20s %9.1f %9.1f %9s %7.2f %7s\n", name.c_str(), shape, blas, dnnl, "-",
                dnnl / blas, "-");
    return;
  }
  const double b16 = measure_gemm(MatmulBackend::kOneDNN, MatmulPrecision::kBF16, s, reps).gflops;
  std::printf("%-16s %-20s %9.1f %9.1f %9.1f %7.2f %7.2f\n", name.c_str(), shape, blas, dnnl,
              b16, dnnl / blas, b16 / blas);
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "bench gemm", "Compare OpenBLAS f32, oneDNN f32 and oneDNN bf16 matmuls (GFLOP/s)",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--n", o->n, "square product size (n x n x n)")->capture_default_str();
      app.add_option("--reps", o->reps, "timed repetitions per product")->capture_default_str();
      app.add_option("--threads", o->threads, "threads (0: default)")->capture_default_str();
      app.add_option("--rows", o->rows, "rows (batch x seq) of the GPT-2 shapes")
          ->capture_default_str();
      app.add_option("--d_model", o->d_model, "model width of the GPT-2 shapes")
          ->capture_default_str();
      app.add_option("--vocab", o->vocab, "vocabulary of the GPT-2 shapes")->capture_default_str();
      return [o] {
        loom::set_num_threads(o->threads);
        const bool bf16 = loom::kernels::resolve_precision(MatmulPrecision::kBF16) ==
                          MatmulPrecision::kBF16;
        // Debian's OpenBLAS 0.3.21 does not recognise some AVX-512 CPUs (Zen 5) and then runs its
        // Haswell kernels: OPENBLAS_CORETYPE=SkylakeX compares against its best.
        std::printf("GFLOP/s, median of %d reps; OpenBLAS kernels: %s (OPENBLAS_CORETYPE selects "
                    "them); f32 training uses %s\n",
                    o->reps, openblas_get_corename(),
                    loom::kernels::backend_name(loom::kernels::f32_backend()));
        std::printf("%-16s %-20s %9s %9s %9s %7s %7s\n", "product", "MxNxK op", "OpenBLAS",
                    "dnnl f32", "dnnl bf16", "f32 x", "bf16 x");
        print_row("square", {o->n, o->n, o->n}, o->reps, bf16);
        for (const Row& r : gpt2_shapes(*o)) print_row(r.name, r.shape, o->reps, bf16);
        std::printf("(f32 x, bf16 x: oneDNN's rate over OpenBLAS's on the same product)\n");
        return 0;
      };
    });
