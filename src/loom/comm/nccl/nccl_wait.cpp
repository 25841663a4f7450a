#include "loom/comm/nccl/nccl_wait.hpp"

#include <thread>

namespace loom::comm::nccl {

namespace {

// Polls with a growing pause (up to 1 ms): short collectives return within microseconds, long
// ones do not burn a core.
template <typename Done>
void poll_until(ncclComm_t comm, Clock::time_point deadline, const char* what, const Done& done) {
  auto pause = std::chrono::microseconds(0);
  for (;;) {
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm, &async);
    if (r != ncclSuccess)
      throw PeerFailure(
          -1, std::string(what) + ": ncclCommGetAsyncError failed: " + ncclGetErrorString(r));
    if (async != ncclSuccess && async != ncclInProgress)
      throw PeerFailure(-1, std::string(what) + ": NCCL error: " + ncclGetErrorString(async) +
                                " (" + ncclGetLastError(comm) + ")");
    if (done(async)) return;
    if (Clock::now() > deadline)
      throw PeerFailure(-1, std::string(what) + " timed out (a rank is not answering)");
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    pause = std::min(pause + std::chrono::microseconds(20), std::chrono::microseconds(1000));
  }
}

}  // namespace

void check(ncclResult_t r, const char* call) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  throw Error(std::string("NCCL error in ") + call + ": " + ncclGetErrorString(r));
}

void wait_ready(ncclComm_t comm, Clock::time_point deadline, const char* what) {
  poll_until(comm, deadline, what, [](ncclResult_t async) { return async == ncclSuccess; });
}

void wait_done(ncclComm_t comm, cudaEvent_t done, Clock::time_point deadline, const char* what) {
  poll_until(comm, deadline, what, [&](ncclResult_t) {
    const cudaError_t e = cudaEventQuery(done);
    if (e == cudaErrorNotReady) return false;
    if (e != cudaSuccess)
      throw PeerFailure(-1, std::string(what) + ": CUDA error " + cudaGetErrorName(e) + ": " +
                                cudaGetErrorString(e));
    return true;
  });
}

}  // namespace loom::comm::nccl
