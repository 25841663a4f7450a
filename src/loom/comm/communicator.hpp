#pragma once
// The only way Loom's ranks talk. A Communicator is one group (the world, or a sub-group made by
// split()) over one backend (shm, mpi, or solo for an unlaunched process). Every call:
//   - is collective over the group unless it says otherwise (send/recv),
//   - is bounded by timeout_s(): a peer that died or stopped answering makes it throw
//     loom::Error naming the operation, the group and the missing rank, never hang,
//   - runs in program order with every other call on this communicator, async ones included.
// After a failure the communicator is unusable (its streams are out of step): later calls throw.
// Debug mode (CommOptions::debug, LOOM_COMM_DEBUG=1; as PyTorch's TORCH_DISTRIBUTED_DEBUG=DETAIL):
// before every collective the ranks first exchange what they are about to call (sequence
// number, operation, count, dtype, reduce op, root, algorithm, group); if any rank's call
// differs, every rank throws an error listing each rank's call instead of hanging or mixing up
// buffers. Off by default: it costs one small all-gather per collective.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <functional>
#include <string>
#include <vector>

#include "loom/comm/backend.hpp"
#include "loom/comm/topology.hpp"
#include "loom/comm/types.hpp"

namespace loom::comm {

struct CommOptions {
  std::string backend = "auto";  // auto (from the environment), shm, mpi
  Algo algo = Algo::Ring;        // default algorithm; LOOM_COMM_ALGO overrides
  double timeout_s = 300;        // per call; LOOM_COMM_TIMEOUT (seconds) overrides
  bool debug = false;            // agree on every call first; LOOM_COMM_DEBUG=1 turns it on
  Topology topology = Topology::Auto;  // LOOM_COMM_TOPOLOGY overrides (topology.hpp)
};

// A pending non-blocking collective.
class Work {
 public:
  explicit Work(std::shared_future<void> f) : f_(std::move(f)) {}
  ~Work();  // waits (the buffer must outlive the operation), swallowing errors
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;
  void wait();  // rethrows the operation's error
  bool done() const;

 private:
  std::shared_future<void> f_;
  bool waited_ = false;
};

class Communicator {
 public:
  Communicator(std::unique_ptr<Backend> backend, const CommOptions& opts, std::string group_name);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return transport().rank(); }
  int size() const { return transport().size(); }
  const std::string& group_name() const { return name_; }
  const char* backend_name() const { return backend_->name(); }
  // World ranks of the members, in group-rank order.
  const std::vector<int>& members() const { return backend_->members(); }

  // Fixed when the communicator is made: the async worker and the caller's thread read them
  // without a lock.
  Algo algo() const { return algo_; }
  double timeout_s() const { return timeout_s_; }
  bool debug() const { return debug_; }

  // The hosts of the world's ranks (null until set_hosts). Collective: also builds this group's
  // two levels (topology.hpp) when it has them and the topology is not flat.
  void set_hosts(std::shared_ptr<const Hosts> hosts);
  const Hosts* hosts() const { return hosts_.get(); }
  // Whether the collectives run in two levels now; set_topology(Flat) turns that off for later
  // calls, Auto/Hierarchical back on (an error where the group has neither levels nor a host
  // segment).
  bool hierarchical() const { return levels_ != nullptr && topology_ != Topology::Flat; }
  // Whether the collectives run over this host's shared-memory segment now: under MPI, a group
  // whose ranks all share one host runs the same algorithms (same results) through memory.
  bool in_host_memory() const {
    return p2p_on_host_ && host_->size() == size() && topology_ != Topology::Flat;
  }
  void set_topology(Topology t);

  // In place on `data`; see Collective in types.hpp for the exact semantics of each.
  void allreduce(float* data, size_t count, ReduceOp op = ReduceOp::Sum,
                 std::optional<Algo> algo = {});
  // bf16 (stored as uint16_t) for compressed gradients; summed in float per hop.
  void allreduce_bf16(uint16_t* data, size_t count, ReduceOp op = ReduceOp::Sum,
                      std::optional<Algo> algo = {});
  std::unique_ptr<Work> allreduce_async(float* data, size_t count, ReduceOp op = ReduceOp::Sum,
                                        std::optional<Algo> algo = {});
  // Rank r ends with the reduced block_of(count, size(), r) of `data`.
  void reduce_scatter(float* data, size_t count, ReduceOp op = ReduceOp::Sum,
                      std::optional<Algo> algo = {});
  // Rank r contributes block_of(count, size(), r) of `data`; all ranks end with every block.
  void allgather(float* data, size_t count, std::optional<Algo> algo = {});
  void broadcast(float* data, size_t count, int root, std::optional<Algo> algo = {});
  void barrier();
  // All-to-all (pairwise exchange over the transport, flat, whatever the algorithm; not async).
  // Equal pieces: send[p*chunk, (p+1)*chunk) goes to rank p, where it lands at
  // recv[rank()*chunk, ..). send and recv hold size()*chunk elements and must not overlap.
  void all_to_all(const float* send, float* recv, size_t chunk);
  // Pieces of any size, packed in rank order: send_counts[p] elements of send go to rank p;
  // recv_counts[p] elements arrive from rank p (exactly what p sends this rank). Elements move
  // without arithmetic, so any 4-byte-word data may travel as "f32" (as in split()).
  void all_to_all_v(const float* send, std::span<const size_t> send_counts, float* recv,
                    std::span<const size_t> recv_counts);
  // Point to point (group ranks); a message must be received with the size it was sent with.
  // Under MPI a peer on this rank's host is reached through shared memory (link_name), unless the
  // topology is flat; every other peer through the group's backend.
  void send(const void* data, size_t bytes, int peer);
  void recv(void* data, size_t bytes, int peer);
  // As send/recv, but a peer found gone (shm: PeerGone) returns false and leaves the
  // communicator usable for the others (the message may be cut short; use that peer no more).
  bool send_unless_gone(const void* data, size_t bytes, int peer);
  bool recv_unless_gone(void* data, size_t bytes, int peer);
  // Receive from any peer (Transport::wait_any): the first of `peers` (group ranks) with a
  // message for this rank waiting, to be received with recv(); or a peer found gone (shm), which
  // leaves the communicator usable for the others. Bounded by the timeout; with `until` before
  // it, a wait with nothing by then returns peer -1 (and the communicator stays usable).
  using Arrival = Transport::Arrival;
  Arrival wait_any(std::span<const int> peers, Clock::time_point until = Clock::time_point::max());
  // The backend send/recv to group rank `peer` go over: "shm" or "mpi".
  const char* link_name(int peer) const;

  // Any collective, any algorithm (the forms above are shorthands).
  void run(const Collective& c, std::optional<Algo> algo = {});
  std::unique_ptr<Work> run_async(const Collective& c, std::optional<Algo> algo = {});

  // Thread-safe. Ends the call in progress on another thread promptly (where the backend can:
  // Transport::abort) and makes every later call throw: for a rank that has failed and must not
  // wait out the timeouts of the transfers it had posted.
  void abort();

  // Sub-group, as MPI_Comm_split: collective over this group; the ranks passing the same color
  // form a group, ordered by (key, rank). Every rank must create its groups in the same order.
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name);

 private:
  Transport& transport() const { return backend_->transport(); }
  void run_now(const Collective& c, Algo algo);
  // Runs `body` with the deadline set; turns a failure into a loom::Error naming `what`.
  template <typename Body>
  void guarded(const std::string& what, const Body& body);
  void wait_for_async();
  std::string describe_group() const;
  // Debug mode: throws unless every rank is about to make this same call (kind: a name(OpKind)
  // or "barrier"/"split"). Called inside guarded().
  void agree_on_call(const char* kind, const Collective& c, Algo algo);

  // The group's two levels (topology.hpp): this rank's host (host_), and its local index across
  // hosts.
  struct Levels {
    HostLayout layout;
    std::unique_ptr<Communicator> cross;
  };
  // A point-to-point peer as seen by the transport that reaches it.
  struct Link {
    Transport* transport;
    int peer;        // its rank on that transport
    int group_peer;  // its rank in this group
  };
  Link link_to(int group_peer) const;
  // Runs `body` over `link` with `deadline`; a peer failure is re-thrown naming the group rank.
  template <typename Body>
  void over(const Link& link, Clock::time_point deadline, const Body& body);
  Arrival wait_any_over_links(std::span<const int> peers, Clock::time_point deadline,
                              Clock::time_point until);
  // send/recv_unless_gone's shared part: `body` over the link to `peer` (a checked group rank)
  // under the timeout; false when the peer is found gone.
  bool unless_gone(int peer, const std::string& what, const std::function<void(const Link&)>& body);
  std::unique_ptr<Communicator> split_with(int color, int key, const std::string& name,
                                           Topology topology);
  // The same ranks (all on one host) over a shared-memory segment of their own: under MPI the
  // intra-host level talks through memory, not through the MPI library. Collective.
  std::unique_ptr<Communicator> over_shared_memory();
  // "rank R (host NAME)" for a group rank, the host when known.
  std::string describe_rank(int group_rank) const;

  std::unique_ptr<Backend> backend_;
  std::string name_;
  // Read by the async worker without a lock; set_topology() may change it between calls.
  std::atomic<Topology> topology_;
  std::shared_ptr<const Hosts> hosts_;
  std::unique_ptr<Levels> levels_;
  // This group's members on this rank's host, in group-rank order (null when unused): the
  // intra-host level of the collectives, and under MPI a shared-memory segment that carries
  // point-to-point to them (p2p_on_host_). host_rank_: group rank -> rank in host_, -1 elsewhere.
  std::unique_ptr<Communicator> host_;
  std::vector<int> host_rank_;
  bool p2p_on_host_ = false;
  const Algo algo_;
  const double timeout_s_;
  const bool debug_;
  int64_t calls_ = 0;   // collectives started on this communicator (debug mode's sequence number)
  std::string broken_;  // first failure's message; non-empty = unusable
  std::shared_ptr<int> next_context_;  // shared by a world and all its sub-groups
  class AsyncQueue;
  std::unique_ptr<AsyncQueue> async_;
  std::mutex mu_;  // serialises calls from the caller's thread and the async worker
};

// The world communicator of this process: shm when started by `loom launch` (LOOM_* variables)
// or torchrun-style on one host (RANK, WORLD_SIZE, MASTER_PORT), mpi under mpirun/srun, and a
// single-rank one when not launched at all.
std::unique_ptr<Communicator> communicator_from_env(const CommOptions& opts = {});

}  // namespace loom::comm
