#include "loom/comm/nccl/nccl_transport.hpp"

#include "loom/comm/nccl/nccl_wait.hpp"
#include "loom/device/cuda/runtime.hpp"

namespace loom::comm::nccl {

using device::cuda::DeviceArray;

void NcclTransport::exchange(int to, std::span<const std::byte> send, int from, size_t recv_bytes,
                             const Sink& sink) {
  LOOM_CHECK(send.empty() || !device::cuda::is_device_pointer(send.data()),
             "nccl backend: ring/tree/naive algorithms and send/recv move host memory; "
             "collectives on device buffers need the native algorithm (--algo native)");
  const cudaStream_t stream = group_.stream();
  DeviceArray<std::byte> send_stage(to >= 0 ? send.size() : 0);
  DeviceArray<std::byte> recv_stage(from >= 0 ? recv_bytes : 0);
  host_recv_.resize(from >= 0 ? recv_bytes : 0);
  group_.run("nccl point-to-point", deadline(), [&] {
    if (to >= 0 && !send.empty())
      LOOM_CUDA_CHECK(cudaMemcpyAsync(send_stage.data(), send.data(), send.size(),
                                      cudaMemcpyHostToDevice, stream));
    LOOM_NCCL_CHECK(ncclGroupStart());
    if (to >= 0)
      LOOM_NCCL_CHECK(
          ncclSend(send_stage.data(), send.size(), ncclUint8, to, group_.comm(), stream));
    if (from >= 0)
      LOOM_NCCL_CHECK(
          ncclRecv(recv_stage.data(), recv_bytes, ncclUint8, from, group_.comm(), stream));
    LOOM_NCCL_CHECK(ncclGroupEnd());
  });
  if (from < 0 || recv_bytes == 0) return;
  // The receive has completed (run() waited for it): a plain copy is safe.
  LOOM_CUDA_CHECK(
      cudaMemcpy(host_recv_.data(), recv_stage.data(), recv_bytes, cudaMemcpyDeviceToHost));
  sink(host_recv_.data(), 0, recv_bytes);
}

}  // namespace loom::comm::nccl
