#include "loom/comm/host_discovery.hpp"

#include <unistd.h>

#include <cstring>

namespace loom::comm {
namespace {

// One rank's entry, all-gathered as raw bytes (ring all-gather copies without arithmetic).
struct HostRecord {
  char identity[192];
  char hostname[64];
};

void copy_truncated(char* dst, size_t size, const std::string& s) {
  std::memset(dst, 0, size);
  std::memcpy(dst, s.data(), std::min(size - 1, s.size()));
}

}  // namespace

Hosts discover_hosts(Communicator& world) {
  std::vector<HostRecord> all(static_cast<size_t>(world.size()));
  HostRecord& mine = all[static_cast<size_t>(world.rank())];
  copy_truncated(mine.identity, sizeof mine.identity, host_identity());
  char host[64] = {};
  gethostname(host, sizeof host - 1);
  copy_truncated(mine.hostname, sizeof mine.hostname, host);
  static_assert(sizeof(HostRecord) % sizeof(float) == 0);
  world.allgather(reinterpret_cast<float*>(all.data()), all.size() * sizeof(HostRecord) / 4,
                  Algo::Ring);
  std::vector<std::string> identity, hostname;
  for (const HostRecord& r : all) {
    identity.emplace_back(r.identity);
    hostname.emplace_back(r.hostname);
  }
  return hosts_from_identities(identity, hostname);
}

}  // namespace loom::comm
