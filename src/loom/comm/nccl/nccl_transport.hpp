#pragma once
// The Transport of an NCCL group: point-to-point messages of host memory, staged through device
// buffers and sent with ncclSend/ncclRecv. It carries what the Communicator itself sends over
// its transport (split's exchange of colors, the dissemination barrier, send/recv of host
// bytes); data on the device goes through the backend's native collectives instead.
#include <vector>

#include "loom/comm/nccl/nccl_group.hpp"

namespace loom::comm::nccl {

class NcclTransport : public Transport {
 public:
  explicit NcclTransport(NcclGroup& group) : group_(group) {}
  int rank() const override { return group_.rank(); }
  int size() const override { return group_.size(); }
  // Refuses device pointers in `send` (ring/tree/naive over an NCCL group would hand device
  // memory to host code): device buffers need --algo native.
  void exchange(int to, std::span<const std::byte> send, int from, size_t recv_bytes,
                const Sink& sink) override;

 private:
  NcclGroup& group_;
  std::vector<std::byte> host_recv_;
};

}  // namespace loom::comm::nccl
