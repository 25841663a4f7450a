#include "loom/comm/transport.hpp"

#include <cstring>

namespace loom::comm {

Sink copy_sink(void* dst) {
  return [dst](const std::byte* data, size_t offset, size_t len) {
    std::memcpy(static_cast<std::byte*>(dst) + offset, data, len);
  };
}

Transport::Arrival Transport::wait_any(std::span<const int>, Clock::time_point) {
  LOOM_FAIL("receive from any peer is not supported by this backend (shm and mpi have it)");
}

std::optional<Transport::Arrival> Transport::poll_any(std::span<const int>) {
  LOOM_FAIL("receive from any peer is not supported by this backend (shm and mpi have it)");
}

void Transport::recv_into(int from, void* dst, size_t bytes) {
  exchange(-1, {}, from, bytes, copy_sink(dst));
}

void Transport::sendrecv_into(int to, std::span<const std::byte> send, int from, void* dst,
                              size_t bytes) {
  exchange(to, send, from, bytes, copy_sink(dst));
}

}  // namespace loom::comm
