#pragma once
// C API only: Open MPI would otherwise pull in its deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <string>

#include "loom/comm/transport.hpp"

namespace loom::comm::mpi {

// Polls `requests` until all complete, yielding the core between polls. Past `deadline` throws PeerFailure(peer, "<what> timed out ...").
void wait_all(MPI_Request* requests, int n, Clock::time_point deadline, int peer,
              const std::string& what);

// True once any wait_all timed out in this process: MPI_Finalize could then wait forever for the
// missing peer, so the backend skips it and mpirun takes the job down when the process exits.
bool a_wait_timed_out();
// Records a timed-out wait made outside wait_all (a probe loop).
void note_wait_timed_out();

// Throws loom::Error for a failed MPI call.
void check(int rc, const char* call);

}  // namespace loom::comm::mpi
