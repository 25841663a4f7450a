#pragma once
// Open MPI backend (only built with LOOM_WITH_MPI): our algorithms over MPI point-to-point, plus
// MPI's own collectives as Algo::Native. Every wait polls non-blocking requests against the
// call's deadline, so even MPI calls are bounded.
#include <memory>

#include "loom/comm/backend.hpp"

namespace loom::comm::mpi {

// Initialises MPI (once per process) and returns the MPI_COMM_WORLD group.
std::unique_ptr<Backend> make_mpi_backend();

}  // namespace loom::comm::mpi
