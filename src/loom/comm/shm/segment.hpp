#pragma once
// One POSIX shared-memory segment per job, shared by the local ranks. Layout (all offsets fixed
// by the config, so every rank computes them alone):
//   [Header][RankInfo x world]                          page-aligned
//   [Channel (ctx, src, dst)] x max_contexts x world x world
// A channel is a single-producer single-consumer ring of `slots` slots of `slot_bytes` bytes:
// the sender fills slot head % slots and advances head; the receiver consumes slot tail % slots
// and advances tail. A context is one communicator (the world or a sub-group), so groups never
// share a ring. The segment is sparse: only the channels a job uses ever get memory. It is
// created once at start-up and reused by every call (touching a fresh page costs microseconds).
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "loom/comm/transport.hpp"

namespace loom::comm::shm {

constexpr uint32_t kMaxSlots = 16;

struct Config {
  int world = 1;
  int max_contexts = 16;  // world + mesh groups (tp, dp, pp, embedding) + pipeline lanes
  uint32_t slots = 8;             // power of two, <= kMaxSlots
  size_t slot_bytes = 512 * 1024;  // multiple of 64
};
// From LOOM_SHM_SLOTS / LOOM_SHM_SLOT_BYTES / LOOM_SHM_CONTEXTS (defaults above).
Config config_from_env(int world);

struct alignas(64) RankInfo {
  std::atomic<int32_t> pid;
  // Bumped by every peer that gives this rank something to do (data sent to it, or a slot it
  // sent freed); the rank sleeps on it with a futex.
  alignas(64) std::atomic<uint32_t> doorbell;
  std::atomic<uint32_t> sleepers;
};

struct alignas(64) ChannelControl {
  alignas(64) std::atomic<uint32_t> head;  // slots published by the sender
  alignas(64) std::atomic<uint32_t> tail;  // slots released by the receiver
  alignas(64) uint32_t len[kMaxSlots];     // bytes in each published slot
};

struct Channel {
  ChannelControl* ctl;
  std::byte* data;  // slots * slot_bytes
};

class Segment {
 public:
  // Rank 0 creates the segment, the others open it (waiting for it until `deadline`); returns
  // once every rank has attached. Rank 0 then removes the name: the mapping stays valid and the
  // memory goes away with the last rank, whatever way it exits.
  static std::unique_ptr<Segment> attach(const std::string& name, int rank, const Config& cfg,
                                         Clock::time_point deadline);
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const Config& config() const { return cfg_; }
  RankInfo& rank_info(int rank);
  Channel channel(int context, int src, int dst);

 private:
  Segment(const Config& cfg, void* base, size_t bytes) : cfg_(cfg), base_(base), bytes_(bytes) {}
  Config cfg_;
  void* base_;
  size_t bytes_;
};

// True while process `pid` exists and is not a zombie.
bool process_alive(pid_t pid);

}  // namespace loom::comm::shm
