// `loom info`: what this build and machine will use (matmul backends, threads, comm backends).
#include <cblas.h>
#include <omp.h>

#include <iostream>

#include "command_registry.hpp"
#include "loom/kernels/cpu/matmul.hpp"

extern "C" char* openblas_get_corename();

static const bool registered = loom::cli::register_command(
    "info", "Print the matmul backends, thread counts and communication backends in use",
    [](CLI::App&) {
      return [] {
        namespace k = loom::kernels;
        std::cout << "matmul: f32 on " << k::backend_name(k::f32_backend()) << ", bf16 "
                  << (k::bf16_matmul_available() ? "on oneDNN (AVX512_BF16)" : "unavailable")
                  << ", double on OpenBLAS\n"
                  << "openblas: " << openblas_get_config() << "\n"
                  << "openblas core: " << openblas_get_corename() << "\n"
                  << "openblas threads: " << openblas_get_num_threads() << "\n"
                  << "openmp threads: " << omp_get_max_threads() << "\n"
#ifdef LOOM_WITH_MPI
                  << "backends: shm mpi\n";
#else
                  << "backends: shm\n";
#endif
        return 0;
      };
    });
