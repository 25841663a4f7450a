#include "loom/comm/shm/segment.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "loom/comm/environment.hpp"
#include "loom/comm/transport.hpp"
#include "loom/core/check.hpp"

namespace loom::comm::shm {
namespace {

constexpr uint64_t kMagic = 0x4c4f4f4d53484d31ULL;  // "LOOMSHM1"
constexpr size_t kPage = 4096;

struct alignas(64) Header {
  std::atomic<uint64_t> magic;
  uint32_t world, max_contexts, slots;
  uint64_t slot_bytes;
  std::atomic<uint32_t> attached;
};

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

size_t ranks_offset() { return round_up(sizeof(Header), 64); }
size_t channels_offset(const Config& c) {
  return round_up(ranks_offset() + sizeof(RankInfo) * c.world, kPage);
}
size_t channel_stride(const Config& c) { return kPage + c.slots * c.slot_bytes; }
size_t segment_bytes(const Config& c) {
  return channels_offset(c) +
         channel_stride(c) * static_cast<size_t>(c.max_contexts) * c.world * c.world;
}

void sleep_briefly() { std::this_thread::sleep_for(std::chrono::milliseconds(1)); }

}  // namespace

Config config_from_env(int world) {
  Config c;
  c.world = world;
  c.max_contexts = static_cast<int>(integer_env("LOOM_SHM_CONTEXTS", c.max_contexts, 1 << 16));
  c.slots = static_cast<uint32_t>(integer_env("LOOM_SHM_SLOTS", c.slots, kMaxSlots));
  c.slot_bytes = static_cast<size_t>(
      integer_env("LOOM_SHM_SLOT_BYTES", static_cast<long>(c.slot_bytes), 1L << 30));
  LOOM_CHECK(c.slots >= 1 && c.slots <= kMaxSlots && (c.slots & (c.slots - 1)) == 0,
             "LOOM_SHM_SLOTS must be a power of two in [1, ", kMaxSlots, "], got ", c.slots);
  LOOM_CHECK(c.slot_bytes >= 64 && c.slot_bytes % 64 == 0,
             "LOOM_SHM_SLOT_BYTES must be a positive multiple of 64, got ", c.slot_bytes);
  LOOM_CHECK(c.max_contexts >= 1, "LOOM_SHM_CONTEXTS must be >= 1");
  return c;
}

bool process_alive(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A dead child that its parent has not reaped yet still answers kill(); /proc says 'Z'.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  if (!std::getline(stat, content)) return true;  // no /proc: trust kill()
  const size_t close = content.rfind(')');
  return close == std::string::npos || close + 2 >= content.size() || content[close + 2] != 'Z';
}

std::unique_ptr<Segment> Segment::attach(const std::string& name, int rank, const Config& cfg,
                                         Clock::time_point deadline) {
  const size_t bytes = segment_bytes(cfg);
  int fd = -1;
  if (rank == 0) {
    fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0 && errno == EEXIST) {  // left over by a crashed job of the same name
      shm_unlink(name.c_str());
      fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    }
    LOOM_CHECK(fd >= 0, "shm: cannot create ", name, ": ", std::strerror(errno));
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      const int err = errno;
      close(fd);
      shm_unlink(name.c_str());
      LOOM_FAIL("shm: cannot size ", name, " to ", bytes, " bytes: ", std::strerror(err));
    }
  } else {
    while ((fd = shm_open(name.c_str(), O_RDWR, 0600)) < 0) {
      LOOM_CHECK(errno == ENOENT, "shm: cannot open ", name, ": ", std::strerror(errno));
      LOOM_CHECK(Clock::now() < deadline, "shm: rank 0 did not create ", name, " in time");
      sleep_briefly();
    }
    struct stat st {};
    while (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) < bytes) {
      if (Clock::now() >= deadline) {
        close(fd);
        LOOM_FAIL("shm: ", name, " has ", st.st_size, " bytes, expected ", bytes,
                  " (ranks started with different LOOM_SHM_* settings?)");
      }
      sleep_briefly();
    }
  }
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) {
    if (rank == 0) shm_unlink(name.c_str());
    LOOM_FAIL("shm: cannot map ", name, ": ", std::strerror(errno));
  }
  std::unique_ptr<Segment> seg(new Segment(cfg, base, bytes));
  auto* h = static_cast<Header*>(base);
  if (rank == 0) {
    h->world = static_cast<uint32_t>(cfg.world);
    h->max_contexts = static_cast<uint32_t>(cfg.max_contexts);
    h->slots = cfg.slots;
    h->slot_bytes = cfg.slot_bytes;
    h->magic.store(kMagic, std::memory_order_release);
  }
  // A peer that never came is its failure, not this rank's (PeerFailure: an elastic launcher
  // tells the two apart).
  while (h->magic.load(std::memory_order_acquire) != kMagic) {
    if (Clock::now() >= deadline)
      throw PeerFailure(0, detail::concat("shm: ", name, " was never initialised by rank 0"));
    sleep_briefly();
  }
  LOOM_CHECK(h->world == static_cast<uint32_t>(cfg.world) && h->slots == cfg.slots &&
                 h->slot_bytes == cfg.slot_bytes &&
                 h->max_contexts == static_cast<uint32_t>(cfg.max_contexts),
             "shm: ", name, " was created for another configuration");
  seg->rank_info(rank).pid.store(getpid());
  h->attached.fetch_add(1);
  while (h->attached.load() < static_cast<uint32_t>(cfg.world)) {
    if (Clock::now() >= deadline) {
      std::string missing;
      int first_missing = -1;
      for (int r = 0; r < cfg.world; ++r)
        if (seg->rank_info(r).pid.load() == 0) {
          if (first_missing < 0) first_missing = r;
          missing += " ";  // not `" " + to_string(r)`: GCC 12 -Wrestrict false positive
          missing += std::to_string(r);
        }
      if (rank == 0) shm_unlink(name.c_str());
      throw PeerFailure(first_missing,
                        detail::concat("shm: ranks", missing, " did not attach to ", name, " in time"));
    }
    sleep_briefly();
  }
  if (rank == 0) shm_unlink(name.c_str());
  return seg;
}

Segment::~Segment() { munmap(base_, bytes_); }

RankInfo& Segment::rank_info(int rank) {
  return reinterpret_cast<RankInfo*>(static_cast<std::byte*>(base_) + ranks_offset())[rank];
}

Channel Segment::channel(int context, int src, int dst) {
  const size_t index = (static_cast<size_t>(context) * cfg_.world + src) * cfg_.world + dst;
  std::byte* p = static_cast<std::byte*>(base_) + channels_offset(cfg_) + index * channel_stride(cfg_);
  return {reinterpret_cast<ChannelControl*>(p), p + kPage};
}

}  // namespace loom::comm::shm
