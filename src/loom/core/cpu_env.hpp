#pragma once
// Process-wide CPU setup that must happen before the OpenMP runtime initialises.

namespace loom {

// Sets OMP_WAIT_POLICY=PASSIVE (unless the user set it) and re-executes the program once
// (guarded by LOOM_CPU_ENV_DONE): libgomp reads the variable only while loading. See
// cpu_env.cpp for why. Returns only if no re-exec happened.
//
// (Earlier versions also set OPENBLAS_CORETYPE here, because Debian's OpenBLAS 0.3.21 picks its
// Haswell kernels on AVX-512 CPUs it does not know, such as Zen 5. Float GEMMs now run on oneDNN,
// which selects its kernels from the CPU's features itself and is as fast on the GPT-2 shapes;
// OpenBLAS is left with the double products of the gradient checks and LOOM_F32_MATMUL=openblas.)
void reexec_with_cpu_env(int argc, char** argv);

// Threads for OpenMP loops (oneDNN's included) and for OpenBLAS (n <= 0: leave the defaults).
void set_num_threads(int n);

}  // namespace loom
