#pragma once
// Transport over the channels of one context of a shared-memory Segment.
#include <memory>
#include <vector>

#include "loom/comm/shm/segment.hpp"
#include "loom/comm/transport.hpp"

namespace loom::comm::shm {

class ShmTransport : public Transport {
 public:
  // members: the world ranks of the group, in group-rank order; `me` is this process's world rank.
  ShmTransport(std::shared_ptr<Segment> seg, int context, std::vector<int> members, int me);
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  void exchange(int to, std::span<const std::byte> send, int from, size_t recv_bytes,
                const Sink& sink) override;
  // Polls the channels from `peers` under the deadline, sleeping on the doorbell when all are
  // empty; after a quiet sleep each peer's process is checked.
  Arrival wait_any(std::span<const int> peers, Clock::time_point until) override;
  // One look at each peer's channel, then at each peer's process.
  std::optional<Arrival> poll_any(std::span<const int> peers) override;

 private:
  void notify(int world_rank);
  // Spins briefly, then sleeps on this rank's doorbell until `ready()` or a peer rings; throws
  // PeerFailure when the deadline passes or a peer we wait for is gone, Error once aborted.
  template <typename Ready>
  void wait(const Ready& ready, int to, int from);  // to/from: peers still pending, or -1
  void check_peer(int group_rank);
  // The channels from `peers` to this rank (checked: real peers, not this rank).
  std::vector<ChannelControl*> channels_from(std::span<const int> peers);
  // The first of `peers` whose channel holds a message not yet received, or -1.
  static int pending(std::span<const int> peers, const std::vector<ChannelControl*>& in);

  std::shared_ptr<Segment> seg_;
  int context_;
  std::vector<int> members_;
  int rank_;
  int me_;
};

}  // namespace loom::comm::shm
