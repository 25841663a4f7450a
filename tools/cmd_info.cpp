// `loom info`: what this build and machine will use (BLAS kernels, threads, backends).
#include <cblas.h>
#include <omp.h>

#include <iostream>

#include "command_registry.hpp"
#include "loom/device/device.hpp"

extern "C" char* openblas_get_corename();

static const bool registered = loom::cli::register_command(
    "info", "Print the BLAS kernels, thread counts and communication backends in use",
    [](CLI::App&) {
      return [] {
        std::cout << "openblas: " << openblas_get_config() << "\n"
                  << "openblas core: " << openblas_get_corename() << "\n"
                  << "openblas threads: " << openblas_get_num_threads() << "\n"
                  << "openmp threads: " << omp_get_max_threads() << "\n"
                  << loom::device::describe_cuda()
#ifdef LOOM_WITH_MPI
                  << "backends: shm mpi\n";
#else
                  << "backends: shm\n";
#endif
        return 0;
      };
    });
