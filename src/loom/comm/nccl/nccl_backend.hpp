#pragma once
// NCCL as a comm backend (GPU builds): collectives on device buffers through the Communicator
// interface, with the native algorithm. Bootstrapped over an existing host world (shm or mpi):
// rank 0 makes the NCCL unique id and broadcasts it there.
//
//   auto world = comm::communicator_from_env();            // shm / mpi, host memory
//   auto gpus  = comm::nccl::make_nccl_communicator(*world, local_rank);
//   gpus->allreduce(device_grads, n, ReduceOp::Avg);        // NCCL, bounded by the timeout
//
// Every call is bounded by the communicator's timeout: the NCCL communicator is non-blocking,
// the host polls for completion and aborts it at the deadline (nccl_wait.hpp).
// reduce_scatter/allgather use ncclReduceScatter/ncclAllGather when the count divides evenly by
// the group size and one grouped ncclReduce/ncclBroadcast per block otherwise (block_of's
// uneven blocks). send/recv (and --algo ring/tree/naive) move host memory over ncclSend/ncclRecv.
#include <memory>

#include "loom/comm/communicator.hpp"

namespace loom::comm::nccl {

// Collective over `bootstrap`: every member calls it, on its own GPU `device` (usually the local
// rank modulo the GPU count; two ranks may share a GPU). The result has bootstrap's ranks and
// timeout, algorithm Native.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device);

}  // namespace loom::comm::nccl
