#pragma once
// Which ranks share a host, and whether collectives use that (LOOM_COMM_TOPOLOGY):
//   flat          every collective runs over the whole group, as one ring/tree (one level).
//   hierarchical  a group whose members sit on more than one host, each host holding the same
//                 number (> 1) of them, runs its collectives in two levels: inside each host
//                 (the intra-host link) and across hosts between the ranks with the same local
//                 index (the inter-host link); see algorithms/hierarchical.cpp. Other groups (one
//                 host, or one rank per host, or uneven hosts) have no second level and run flat.
//                 Requesting it for a world that cannot use it is an error at startup.
//   auto          (default) hierarchical where a group can use it, flat otherwise: a job on one
//                 host runs exactly as with flat.
// Hosts are discovered (discover_hosts) or, for tests on one machine, simulated by
// LOOM_HOST_MAP=h0,h1,... (the host index of each world rank; test-only).
#include <optional>
#include <string>
#include <vector>

namespace loom::comm {

enum class Topology { Auto, Flat, Hierarchical };
const char* name(Topology t);
Topology parse_topology(const std::string& s);

// The host of every world rank.
struct Hosts {
  std::vector<int> host_of;        // world rank -> host index (numbered by first world rank)
  std::vector<std::string> names;  // host index -> name (its hostname, or "host K" if simulated)
  int count() const { return static_cast<int>(names.size()); }
};

// Every rank on one host.
Hosts single_host(int world_size, const std::string& name);
// LOOM_HOST_MAP's value: world_size comma-separated host indices, e.g. "0,0,1,1"; errors name
// `source` (the variable or flag it came from).
Hosts parse_host_map(const std::string& spec, int world_size,
                     const std::string& source = "LOOM_HOST_MAP");
// `world_size / ranks_per_host` hosts, each holding that many consecutive ranks (as
// `mpirun --map-by ppr:N:node` places them); ranks_per_host must divide world_size.
Hosts consecutive_hosts(int world_size, int ranks_per_host);
// This process's host identity: its hostname, its network namespace and the device of its
// /dev/shm (the shared-memory probe: ranks only share memory when they see the same /dev/shm),
// so two network namespaces or containers on one machine count as two hosts.
std::string host_identity();
// Hosts from every world rank's identity and hostname (as gathered by discover_hosts).
Hosts hosts_from_identities(const std::vector<std::string>& identity,
                            const std::vector<std::string>& hostname);

// How one group's members spread over hosts, when it has a second level: host k of the group
// (numbered by first member) holds group ranks ranks[k] (ascending); every host holds the same
// number of them.
struct HostLayout {
  std::vector<std::vector<int>> ranks;
  int hosts() const { return static_cast<int>(ranks.size()); }
  int per_host() const { return static_cast<int>(ranks[0].size()); }
  int host_of(int group_rank) const;
  int local_index(int group_rank) const;
};

// Whether some host holds two or more of `members` (world ranks).
bool shares_a_host(const Hosts& hosts, const std::vector<int>& members);

// The layout of the group whose members (world ranks, in group-rank order) are `members`, or
// nothing when it has no second level (one host, one member per host, or uneven hosts).
std::optional<HostLayout> layout_of(const Hosts& hosts, const std::vector<int>& members);

}  // namespace loom::comm
