#include "loom/comm/topology.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "loom/core/check.hpp"

namespace loom::comm {

const char* name(Topology t) {
  switch (t) {
    case Topology::Auto: return "auto";
    case Topology::Flat: return "flat";
    case Topology::Hierarchical: return "hierarchical";
  }
  return "?";
}

Topology parse_topology(const std::string& s) {
  for (Topology t : {Topology::Auto, Topology::Flat, Topology::Hierarchical})
    if (s == name(t)) return t;
  LOOM_FAIL("unknown topology '", s, "' (expected auto, flat or hierarchical)");
}

Hosts single_host(int world_size, const std::string& name) {
  return {std::vector<int>(static_cast<size_t>(world_size), 0), {name}};
}

Hosts parse_host_map(const std::string& spec, int world_size, const std::string& source) {
  std::vector<int> given;
  std::stringstream ss(spec);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
    }
    LOOM_CHECK(used == item.size() && v >= 0, source, "='", spec, "': '", item,
               "' is not a host index (expected non-negative integers, one per rank)");
    given.push_back(v);
  }
  LOOM_CHECK(static_cast<int>(given.size()) == world_size, source, "='", spec, "' names ",
             given.size(), " ranks, the job has ", world_size);
  // Renumber by first rank, so host 0 is rank 0's.
  std::map<int, int> index;
  Hosts h;
  for (int v : given) {
    auto [it, added] = index.emplace(v, static_cast<int>(index.size()));
    if (added) h.names.push_back(detail::concat("host ", v));
    h.host_of.push_back(it->second);
  }
  return h;
}

Hosts consecutive_hosts(int world_size, int ranks_per_host) {
  LOOM_CHECK(ranks_per_host >= 1 && world_size % ranks_per_host == 0, ranks_per_host,
             " ranks per host do not divide the world size ", world_size);
  Hosts h;
  for (int r = 0; r < world_size; ++r) h.host_of.push_back(r / ranks_per_host);
  for (int k = 0; k < world_size / ranks_per_host; ++k) h.names.push_back(detail::concat("host ", k));
  return h;
}

std::string host_identity() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  char netns[128] = {};
  if (readlink("/proc/self/ns/net", netns, sizeof netns - 1) < 0) netns[0] = '?';
  struct stat shm {};
  const bool has_shm = stat("/dev/shm", &shm) == 0;
  return detail::concat(host, "|", netns, "|", has_shm ? static_cast<long>(shm.st_dev) : -1L);
}

Hosts hosts_from_identities(const std::vector<std::string>& identity,
                            const std::vector<std::string>& hostname) {
  std::map<std::string, int> index;
  Hosts h;
  for (size_t r = 0; r < identity.size(); ++r) {
    auto [it, added] = index.emplace(identity[r], static_cast<int>(index.size()));
    if (added) h.names.push_back(hostname[r]);
    h.host_of.push_back(it->second);
  }
  // Two hosts with one hostname (network namespaces, containers) get told apart.
  const std::vector<std::string> hostnames = h.names;
  for (size_t k = 0; k < h.names.size(); ++k)
    if (std::count(hostnames.begin(), hostnames.end(), hostnames[k]) > 1)
      h.names[k] += detail::concat("#", k);
  return h;
}

int HostLayout::host_of(int group_rank) const {
  for (size_t k = 0; k < ranks.size(); ++k)
    if (std::find(ranks[k].begin(), ranks[k].end(), group_rank) != ranks[k].end())
      return static_cast<int>(k);
  LOOM_FAIL("group rank ", group_rank, " is on no host of the layout");
}

int HostLayout::local_index(int group_rank) const {
  const auto& on_host = ranks[static_cast<size_t>(host_of(group_rank))];
  return static_cast<int>(std::find(on_host.begin(), on_host.end(), group_rank) -
                          on_host.begin());
}

bool shares_a_host(const Hosts& hosts, const std::vector<int>& members) {
  std::vector<int> seen(static_cast<size_t>(hosts.count()), 0);
  for (const int world : members)
    if (++seen[static_cast<size_t>(hosts.host_of[static_cast<size_t>(world)])] > 1) return true;
  return false;
}

std::optional<HostLayout> layout_of(const Hosts& hosts, const std::vector<int>& members) {
  std::map<int, int> index;  // world host -> host of the group
  HostLayout l;
  for (size_t g = 0; g < members.size(); ++g) {
    const int host = hosts.host_of[static_cast<size_t>(members[g])];
    auto [it, added] = index.emplace(host, static_cast<int>(index.size()));
    if (added) l.ranks.emplace_back();
    l.ranks[static_cast<size_t>(it->second)].push_back(static_cast<int>(g));
  }
  if (l.ranks.size() < 2 || l.ranks[0].size() < 2) return std::nullopt;
  for (const auto& on_host : l.ranks)
    if (on_host.size() != l.ranks[0].size()) return std::nullopt;
  return l;
}

}  // namespace loom::comm
