#include "loom/comm/mpi/mpi_transport.hpp"

#include <sched.h>

#include <climits>

#include "loom/comm/mpi/mpi_wait.hpp"

namespace loom::comm::mpi {

MpiTransport::MpiTransport(MPI_Comm comm, std::vector<int> world_ranks)
    : comm_(comm), world_ranks_(std::move(world_ranks)) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

void MpiTransport::exchange(int to, std::span<const std::byte> send, int from, size_t recv_bytes,
                            const Sink& sink) {
  const size_t send_bytes = to >= 0 ? send.size() : 0;
  if (from < 0) recv_bytes = 0;
  LOOM_CHECK(send_bytes <= INT_MAX && recv_bytes <= INT_MAX,
             "mpi: messages over 2 GiB are not supported");
  MPI_Request reqs[2];
  int n = 0;
  if (recv_bytes > 0) {
    if (staging_.size() < recv_bytes) staging_.resize(recv_bytes);
    check(MPI_Irecv(staging_.data(), static_cast<int>(recv_bytes), MPI_BYTE, from, 0, comm_,
                    &reqs[n++]),
          "MPI_Irecv");
  }
  if (send_bytes > 0)
    check(MPI_Isend(send.data(), static_cast<int>(send_bytes), MPI_BYTE, to, 0, comm_,
                    &reqs[n++]),
          "MPI_Isend");
  if (n == 0) return;
  const int peer = recv_bytes > 0 ? from : to;
  wait_all(reqs, n, deadline_, peer,
           detail::concat("waiting for rank ", world_ranks_[peer]));
  if (recv_bytes > 0) sink(staging_.data(), 0, recv_bytes);
}

Transport::Arrival MpiTransport::wait_any(std::span<const int> peers, Clock::time_point until) {
  for (;;) {
    if (const std::optional<Arrival> a = poll_any(peers)) return *a;
    if (Clock::now() >= until && until < deadline_) return {};
    if (Clock::now() >= deadline_) {
      note_wait_timed_out();
      throw PeerFailure(peers[0], detail::concat("timed out waiting for a message from any of ",
                                                 peers.size(), " ranks (rank ",
                                                 world_ranks_[peers[0]], ", ...)"));
    }
    sched_yield();
  }
}

std::optional<Transport::Arrival> MpiTransport::poll_any(std::span<const int> peers) {
  LOOM_CHECK(!peers.empty(), "mpi: receive from any peer of an empty set");
  for (const int p : peers) {
    int flag = 0;
    check(MPI_Iprobe(p, 0, comm_, &flag, MPI_STATUS_IGNORE), "MPI_Iprobe");
    if (flag) return Arrival{p, false};
  }
  return std::nullopt;
}

}  // namespace loom::comm::mpi
