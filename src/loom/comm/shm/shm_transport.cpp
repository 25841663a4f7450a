#include "loom/comm/shm/shm_transport.hpp"

#include <immintrin.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace loom::comm::shm {
namespace {

// Long enough to catch a peer that is a few microseconds behind (a slot copy), short enough that
// an oversubscribed rank gives its core away quickly.
constexpr auto kSpin = std::chrono::microseconds(20);
// How long one futex sleep lasts before the deadline and the peers' liveness are checked.
constexpr long kSleepNs = 5'000'000;

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, long ns) {
  timespec ts{0, ns};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace

ShmTransport::ShmTransport(std::shared_ptr<Segment> seg, int context, std::vector<int> members,
                           int me)
    : seg_(std::move(seg)), context_(context), members_(std::move(members)), me_(me) {
  LOOM_CHECK(context_ < seg_->config().max_contexts, "shm: more than ",
             seg_->config().max_contexts, " communicators (groups); raise LOOM_SHM_CONTEXTS");
  const auto it = std::find(members_.begin(), members_.end(), me_);
  LOOM_CHECK(it != members_.end(), "shm: rank ", me_, " is not a member of its own group");
  rank_ = static_cast<int>(it - members_.begin());
}

void ShmTransport::notify(int world_rank) {
  RankInfo& peer = seg_->rank_info(world_rank);
  peer.doorbell.fetch_add(1);
  if (peer.sleepers.load() != 0) futex_wake_all(&peer.doorbell);
}

void ShmTransport::check_peer(int group_rank) {
  if (group_rank < 0) return;
  const int world = members_[group_rank];
  const pid_t pid = seg_->rank_info(world).pid.load();
  if (!process_alive(pid))
    throw PeerGone(group_rank, detail::concat("rank ", world, " (pid ", pid, ") is gone"));
}

template <typename Ready>
void ShmTransport::wait(const Ready& ready, int to, int from) {
  const auto spin_until = Clock::now() + kSpin;
  while (Clock::now() < spin_until) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return;
      _mm_pause();
    }
  }
  RankInfo& mine = seg_->rank_info(me_);
  for (;;) {
    mine.sleepers.fetch_add(1);
    const uint32_t bell = mine.doorbell.load();
    if (ready()) {
      mine.sleepers.fetch_sub(1);
      return;
    }
    futex_wait(&mine.doorbell, bell, kSleepNs);
    mine.sleepers.fetch_sub(1);
    if (ready()) return;
    LOOM_CHECK(!aborted(), "abandoned: this rank failed and gave up its pending transfers");
    if (mine.doorbell.load() != bell) continue;  // woken by activity: no need to check peers
    // Quiet for a whole sleep: is the peer we wait for still there, and is there time left?
    check_peer(from);
    check_peer(to);
    if (Clock::now() >= deadline_) {
      const int waiting_for = from >= 0 ? from : to;
      throw PeerFailure(waiting_for,
                        detail::concat("timed out waiting for rank ", members_[waiting_for]));
    }
  }
}

void ShmTransport::exchange(int to, std::span<const std::byte> send, int from, size_t recv_bytes,
                            const Sink& sink) {
  const Config& cfg = seg_->config();
  const uint32_t slots = cfg.slots, mask = cfg.slots - 1;
  const size_t slot_bytes = cfg.slot_bytes;
  const size_t send_bytes = to >= 0 ? send.size() : 0;
  if (from < 0) recv_bytes = 0;
  Channel out{}, in{};
  if (send_bytes > 0) out = seg_->channel(context_, me_, members_[to]);
  if (recv_bytes > 0) in = seg_->channel(context_, members_[from], me_);
  size_t sent = 0, received = 0;
  while (sent < send_bytes || received < recv_bytes) {
    bool progress = false;
    if (sent < send_bytes) {
      uint32_t head = out.ctl->head.load(std::memory_order_relaxed);
      while (sent < send_bytes &&
             head - out.ctl->tail.load(std::memory_order_acquire) < slots) {
        const size_t len = std::min(slot_bytes, send_bytes - sent);
        std::memcpy(out.data + (head & mask) * slot_bytes, send.data() + sent, len);
        out.ctl->len[head & mask] = static_cast<uint32_t>(len);
        out.ctl->head.store(++head, std::memory_order_release);
        sent += len;
        notify(members_[to]);
        progress = true;
      }
    }
    if (received < recv_bytes) {
      uint32_t tail = in.ctl->tail.load(std::memory_order_relaxed);
      while (received < recv_bytes && in.ctl->head.load(std::memory_order_acquire) != tail) {
        const size_t expected = std::min(slot_bytes, recv_bytes - received);
        const uint32_t len = in.ctl->len[tail & mask];
        LOOM_CHECK(len == expected, "shm: rank ", members_[from], " sent a piece of ", len,
                   " bytes where rank ", me_, " expected ", expected,
                   " (ranks called different collectives or sizes)");
        sink(in.data + (tail & mask) * slot_bytes, received, len);
        in.ctl->tail.store(++tail, std::memory_order_release);
        received += len;
        notify(members_[from]);
        progress = true;
      }
    }
    if (progress) continue;
    auto ready = [&] {
      return (sent < send_bytes && out.ctl->head.load(std::memory_order_relaxed) -
                                           out.ctl->tail.load(std::memory_order_acquire) <
                                       slots) ||
             (received < recv_bytes && in.ctl->head.load(std::memory_order_acquire) !=
                                           in.ctl->tail.load(std::memory_order_relaxed));
    };
    wait(ready, sent < send_bytes ? to : -1, received < recv_bytes ? from : -1);
  }
}

std::vector<ChannelControl*> ShmTransport::channels_from(std::span<const int> peers) {
  LOOM_CHECK(!peers.empty(), "shm: receive from any peer of an empty set");
  std::vector<ChannelControl*> in;
  for (const int p : peers) {
    LOOM_CHECK(p >= 0 && p < size() && p != rank_, "shm: receive from any peer: bad peer ", p);
    in.push_back(seg_->channel(context_, members_[p], me_).ctl);
  }
  return in;
}

int ShmTransport::pending(std::span<const int> peers, const std::vector<ChannelControl*>& in) {
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i]->head.load(std::memory_order_acquire) != in[i]->tail.load(std::memory_order_relaxed))
      return peers[i];
  return -1;
}

std::optional<Transport::Arrival> ShmTransport::poll_any(std::span<const int> peers) {
  LOOM_CHECK(!aborted(), "abandoned: this rank failed and gave up its pending transfers");
  const int peer = pending(peers, channels_from(peers));
  if (peer >= 0) return Arrival{peer, false};
  for (const int p : peers)
    if (!process_alive(seg_->rank_info(members_[p]).pid.load())) return Arrival{p, true};
  return std::nullopt;
}

Transport::Arrival ShmTransport::wait_any(std::span<const int> peers, Clock::time_point until) {
  const std::vector<ChannelControl*> in = channels_from(peers);
  RankInfo& mine = seg_->rank_info(me_);
  for (;;) {
    mine.sleepers.fetch_add(1);
    const uint32_t bell = mine.doorbell.load();
    int peer = pending(peers, in);
    if (peer < 0) {
      futex_wait(&mine.doorbell, bell, kSleepNs);
      peer = pending(peers, in);
    }
    mine.sleepers.fetch_sub(1);
    if (peer >= 0) return {peer, false};
    LOOM_CHECK(!aborted(), "abandoned: this rank failed and gave up its pending transfers");
    if (Clock::now() >= until && until < deadline_) return {};
    if (mine.doorbell.load() != bell) continue;  // woken by activity
    for (const int p : peers)
      if (!process_alive(seg_->rank_info(members_[p]).pid.load())) return {p, true};
    if (Clock::now() >= deadline_)
      throw PeerFailure(peers[0], detail::concat("timed out waiting for a message from any of ",
                                                 peers.size(), " ranks (rank ", members_[peers[0]],
                                                 ", ...)"));
  }
}

}  // namespace loom::comm::shm
