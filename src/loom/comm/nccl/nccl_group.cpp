#include "loom/comm/nccl/nccl_group.hpp"

#include "loom/comm/nccl/nccl_wait.hpp"
#include "loom/device/cuda/runtime.hpp"

namespace loom::comm::nccl {

ncclConfig_t nonblocking_config() {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  return config;
}

NcclGroup::NcclGroup(ncclComm_t comm, int rank, int size) : comm_(comm), rank_(rank), size_(size) {
  LOOM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
}

NcclGroup::~NcclGroup() {
  if (!failed_) {
    // Finalize flushes outstanding work and needs the peers; bounded like every other wait.
    try {
      LOOM_NCCL_CHECK(ncclCommFinalize(comm_));
      wait_ready(comm_, Clock::now() + std::chrono::seconds(30), "ncclCommFinalize");
      ncclCommDestroy(comm_);
    } catch (const std::exception&) {
      ncclCommAbort(comm_);
    }
  }
  cudaEventDestroy(done_);
  cudaEventDestroy(ready_);
  cudaStreamDestroy(stream_);
}

void NcclGroup::run(const char* what, Clock::time_point deadline,
                    const std::function<void()>& issue) {
  LOOM_CHECK(!failed_, what, ": the NCCL communicator was aborted by an earlier failure");
  try {
    LOOM_CUDA_CHECK(cudaEventRecord(ready_, device::cuda::compute_stream()));
    LOOM_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    issue();
    wait_ready(comm_, deadline, what);  // enqueueing itself may be in progress (non-blocking)
    LOOM_CUDA_CHECK(cudaEventRecord(done_, stream_));
    wait_done(comm_, done_, deadline, what);
  } catch (...) {
    // A timeout, an asynchronous NCCL error or a failed enqueue: the NCCL state is unknown, so
    // the communicator is aborted (this also ends kernels still waiting for a dead peer).
    failed_ = true;
    ncclCommAbort(comm_);
    throw;
  }
}

}  // namespace loom::comm::nccl
