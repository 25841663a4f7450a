#pragma once
// One NCCL communicator with its stream: what the NCCL transport and backend share.
#include <cuda_runtime.h>
#include <nccl.h>

#include <functional>

#include "loom/comm/transport.hpp"

namespace loom::comm::nccl {

class NcclGroup {
 public:
  // Takes ownership of `comm` (made non-blocking).
  NcclGroup(ncclComm_t comm, int rank, int size);
  ~NcclGroup();  // finalizes (bounded) and destroys, or aborts after a failure
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  ncclComm_t comm() const { return comm_; }
  cudaStream_t stream() const { return stream_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

  // Runs `issue` (NCCL calls on stream()) after the work queued so far on the compute stream
  // (its buffers are ready), then waits until the NCCL work has finished or the deadline passes.
  void run(const char* what, Clock::time_point deadline, const std::function<void()>& issue);

 private:
  ncclComm_t comm_;
  int rank_, size_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  bool failed_ = false;
};

// A non-blocking communicator config (every NCCL wait is then a poll the host bounds).
ncclConfig_t nonblocking_config();

}  // namespace loom::comm::nccl
