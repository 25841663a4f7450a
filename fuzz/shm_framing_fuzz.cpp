// The shm transport's framing as a receiver sees it: a channel's head/tail counters and the
// per-slot lengths a peer published. Whatever a (buggy or dying) peer wrote there, a receive must
// copy within its buffer and the slot, or fail with a loom::Error naming the mismatch.
//
// Input: [u16 recv_bytes][u8 tail][u8 extra published slots][u32 len x kSlots][slot data...]
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_input.hpp"
#include "loom/comm/shm/segment.hpp"
#include "loom/comm/shm/shm_transport.hpp"

namespace {

constexpr uint32_t kSlots = 4;
constexpr size_t kSlotBytes = 64;

// One single-rank segment for the whole run (creating one per input would measure shm_open).
struct Fixture {
  std::shared_ptr<loom::comm::shm::Segment> seg;
  std::unique_ptr<loom::comm::shm::ShmTransport> transport;
  Fixture() {
    loom::comm::shm::Config cfg;
    cfg.world = 1;
    cfg.max_contexts = 1;
    cfg.slots = kSlots;
    cfg.slot_bytes = kSlotBytes;
    seg = loom::comm::shm::Segment::attach("/loom-fuzz-" + std::to_string(getpid()), 0, cfg,
                                           loom::comm::Clock::now() + std::chrono::seconds(10));
    transport = std::make_unique<loom::comm::shm::ShmTransport>(seg, 0, std::vector<int>{0}, 0);
    transport->set_deadline(loom::comm::Clock::now() + std::chrono::hours(24 * 365));
  }
};

uint32_t read_u32(const uint8_t* p) {
  uint32_t x;
  std::memcpy(&x, p, 4);
  return x;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kFixed = 4 + 4 * kSlots;
  if (size < kFixed) return 0;
  static Fixture f;
  // Only as many bytes as the published slots can hold: more would wait for a peer that is not
  // there (until the deadline), which is the timeout path, not the framing.
  const size_t recv_bytes = (data[0] | (data[1] << 8)) % (kSlots * kSlotBytes + 1);
  const size_t pieces = (recv_bytes + kSlotBytes - 1) / kSlotBytes;
  const uint32_t tail = data[2];
  const uint32_t published = static_cast<uint32_t>(pieces + data[3] % (kSlots - pieces + 1));
  loom::comm::shm::Channel ch = f.seg->channel(0, 0, 0);
  ch.ctl->tail.store(tail);
  ch.ctl->head.store(tail + published);
  for (uint32_t s = 0; s < kSlots; ++s) ch.ctl->len[s] = read_u32(data + 4 + 4 * s);
  const size_t payload = std::min(size - kFixed, static_cast<size_t>(kSlots * kSlotBytes));
  std::memset(ch.data, 0, kSlots * kSlotBytes);
  std::memcpy(ch.data, data + kFixed, payload);

  std::vector<std::byte> out(recv_bytes);
  loom::fuzz::expect_ok_or_loom_error([&] {
    f.transport->exchange(-1, {}, 0, recv_bytes, loom::comm::copy_sink(out.data()));
  });
  return 0;
}
