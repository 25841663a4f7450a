#pragma once
// Process-wide CPU setup that must happen before OpenBLAS initialises.

namespace loom {

// Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (e.g. Zen 5) and falls back to
// its Haswell kernels at ~55% of the machine's sgemm peak; some environments even pin
// OPENBLAS_CORETYPE=Haswell. OpenBLAS reads OPENBLAS_CORETYPE only while loading, so when the CPU
// has AVX-512 and the variable names no AVX-512 kernel family, we set it to SkylakeX and
// re-execute the program once (guarded by LOOM_CPU_ENV_DONE). LOOM_BLAS_CORETYPE=<name> forces a
// kernel family (e.g. Haswell, to compare). The same re-exec sets OMP_WAIT_POLICY=PASSIVE unless
// the user set it (see cpu_env.cpp for why). Returns only if no re-exec happened.
void reexec_with_fast_blas(int argc, char** argv);

// Threads for OpenMP loops and for OpenBLAS (n <= 0: leave the defaults).
void set_num_threads(int n);

}  // namespace loom
