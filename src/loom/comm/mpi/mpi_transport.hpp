#pragma once
// C API only: Open MPI would otherwise pull in its deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <vector>

#include "loom/comm/transport.hpp"

namespace loom::comm::mpi {

// Transport over MPI_Isend/MPI_Irecv on one communicator. A received message lands in a staging
// buffer (kept between calls) and goes to the sink in one piece.
class MpiTransport : public Transport {
 public:
  MpiTransport(MPI_Comm comm, std::vector<int> world_ranks);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void exchange(int to, std::span<const std::byte> send, int from, size_t recv_bytes,
                const Sink& sink) override;
  // MPI_Iprobe of each of `peers` in turn until one has a message, yielding the core between
  // rounds; never reports a peer gone (Open MPI ends the job when a rank dies).
  Arrival wait_any(std::span<const int> peers, Clock::time_point until) override;
  // One MPI_Iprobe of each of `peers`.
  std::optional<Arrival> poll_any(std::span<const int> peers) override;

 private:
  MPI_Comm comm_;
  std::vector<int> world_ranks_;
  int rank_ = 0, size_ = 1;
  std::vector<std::byte> staging_;
};

}  // namespace loom::comm::mpi
