#pragma once
// The point-to-point interface every collective algorithm is written over (algorithms/), and
// that every backend implements (shm/, mpi/). Algorithm and transport never mix: an algorithm
// only sees group ranks 0..size()-1 and byte streams between them.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "loom/core/check.hpp"

namespace loom::comm {

using Clock = std::chrono::steady_clock;

// Receives the bytes of a message in order, piece by piece as they arrive (`offset` is the
// position of `data` in the message). A piece is a whole number of 4-byte words except possibly
// the last one, so an element never straddles two pieces.
using Sink = std::function<void(const std::byte* data, size_t offset, size_t len)>;

// Thrown by a transport when a peer does not answer: it died, or the deadline passed while
// waiting for it. The communicator adds the operation and the group to the message.
struct PeerFailure : Error {
  PeerFailure(int group_rank, const std::string& what) : Error(what), peer(group_rank) {}
  int peer;
};

// A PeerFailure where the peer's process is known to be gone (shm checks; MPI cannot tell): a
// message it was sending may have been cut short.
struct PeerGone : PeerFailure {
  using PeerFailure::PeerFailure;
};

// The exit code of a rank that stops because a PeerFailure reached its main: it failed because
// another rank did. When several ranks end at once, the launcher names a rank that ended some
// other way, the one that failed on its own (sysexits' EX_TEMPFAIL).
inline constexpr int kPeerFailureExitCode = 75;

// The exit code of a launched rank that could not join its job: it failed before its
// communicator was made (sysexits' EX_UNAVAILABLE). An elastic launcher (launch/launcher.hpp)
// counts such a rank as lost and may go on without it.
inline constexpr int kRankStartFailureExitCode = 69;
struct RankStartFailure : Error {
  using Error::Error;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Sends `send` to group rank `to` while receiving `recv_bytes` from group rank `from`, handing
  // them to `sink`; returns when both are complete. to/from = -1: no send/receive. Messages
  // between two ranks arrive in the order they were sent and must be received with the size
  // they were sent with. Waits end by the deadline (throwing PeerFailure).
  virtual void exchange(int to, std::span<const std::byte> send, int from, size_t recv_bytes,
                        const Sink& sink) = 0;

  void set_deadline(Clock::time_point d) { deadline_ = d; }
  Clock::time_point deadline() const { return deadline_; }

  // Thread-safe. Ends the wait in progress on another thread and makes every later exchange
  // throw loom::Error: for a rank that has failed and gives up the transfers it posted instead
  // of waiting out their timeouts. The shm transport honours it within one sleep (5 ms); mpi and
  // nccl, which cannot take back an operation they have started, end it by the deadline.
  void abort() { aborted_.store(true); }
  bool aborted() const { return aborted_.load(); }

  // Receive from any peer: waits until one of `peers` (group ranks, not this rank) has a message
  // for this rank that is not yet received, and returns it (scanning `peers` in order, so a
  // caller that rotates them serves its peers fairly); the message is then received as usual.
  // A peer found gone with nothing pending comes back with `gone` set where the backend can tell
  // (shm; under MPI a lost rank ends the job). The wait ends by the deadline (PeerFailure naming
  // the first of `peers`), or earlier at `until` with no peer (peer -1), which is no failure.
  // Backends without it (nccl, solo) refuse.
  struct Arrival {
    int peer = -1;
    bool gone = false;
  };
  virtual Arrival wait_any(std::span<const int> peers, Clock::time_point until);
  // The same without waiting: the first of `peers` with a message (or found gone), or nothing.
  // For a caller that waits on several transports at once (Communicator::wait_any over peers on
  // this host and on others).
  virtual std::optional<Arrival> poll_any(std::span<const int> peers);

  // Convenience forms of exchange().
  void send(int to, std::span<const std::byte> data) { exchange(to, data, -1, 0, {}); }
  void recv_into(int from, void* dst, size_t bytes);
  void sendrecv_into(int to, std::span<const std::byte> send, int from, void* dst, size_t bytes);

 protected:
  Clock::time_point deadline_ = Clock::time_point::max();
  std::atomic<bool> aborted_{false};
};

Sink copy_sink(void* dst);

}  // namespace loom::comm
