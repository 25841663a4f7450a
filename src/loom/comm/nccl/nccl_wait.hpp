#pragma once
// Every wait of the NCCL backend ends by the communicator's deadline. NCCL communicators are
// created non-blocking (ncclConfig_t::blocking = 0), so no NCCL call blocks the host; the host
// polls ncclCommGetAsyncError (and, for enqueued work, a CUDA event) and, when the deadline
// passes or NCCL reports an error, throws PeerFailure; the owner of the communicator then aborts
// it (ncclCommAbort also stops kernels waiting for a dead peer). The Communicator adds the
// operation and group to the message.
#include <cuda_runtime.h>
#include <nccl.h>

#include "loom/comm/transport.hpp"

namespace loom::comm::nccl {

// ncclResult_t -> loom::Error naming the call (ncclInProgress is success for a non-blocking
// communicator: the caller then waits with wait_ready).
void check(ncclResult_t r, const char* call);
#define LOOM_NCCL_CHECK(call) ::loom::comm::nccl::check((call), #call)

// Waits until the non-blocking operations issued on `comm` (init, split, enqueueing a
// collective, group end) have left ncclInProgress.
void wait_ready(ncclComm_t comm, Clock::time_point deadline, const char* what);

// Waits until `done` (recorded after the NCCL kernels on their stream) has completed.
void wait_done(ncclComm_t comm, cudaEvent_t done, Clock::time_point deadline, const char* what);

}  // namespace loom::comm::nccl
