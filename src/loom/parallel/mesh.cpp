#include "loom/parallel/mesh.hpp"

#include <algorithm>
#include <sstream>
#include <vector>

#include "loom/core/check.hpp"

namespace loom::parallel {
namespace {

std::string divisors(int n) {
  std::string out;
  for (int d = 1; d <= n; ++d) {
    if (n % d != 0) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(d);
  }
  return out;
}

// Group colors: ranks with equal color form the group. The embedding group holds the first and
// last stage of a (dp, tp) column; the other stages get a group of their own, never used.
int tp_color(const MeshShape& s, const MeshCoord& c) { return c.pp * s.dp + c.dp; }
int dp_color(const MeshShape& s, const MeshCoord& c) { return c.pp * s.tp + c.tp; }
int pp_color(const MeshShape& s, const MeshCoord& c) { return c.dp * s.tp + c.tp; }
bool on_embedding_stage(const MeshShape& s, const MeshCoord& c) {
  return c.pp == 0 || c.pp == s.pp - 1;
}
int embedding_color(const MeshShape& s, const MeshCoord& c) {
  return on_embedding_stage(s, c) ? pp_color(s, c) : s.dp * s.tp + mesh_rank(s, c);
}
// The ep consecutive dp ranks of one dp group (same pp and tp) with the same dp / ep.
int ep_color(const MeshShape& s, const MeshCoord& c) {
  return dp_color(s, c) * (s.dp / s.ep) + c.dp / s.ep;
}

std::vector<int> identity(int world) {
  std::vector<int> out(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) out[static_cast<size_t>(r)] = r;
  return out;
}

using Color = int (*)(const MeshShape&, const MeshCoord&);

// The world ranks of `world_rank`'s group of that color, in mesh order.
std::string members(const MeshShape& s, const std::vector<int>& positions, int world_rank,
                    Color color) {
  const int mine = color(s, mesh_coord(s, positions[static_cast<size_t>(world_rank)]));
  std::vector<int> world_of(positions.size());
  for (size_t r = 0; r < positions.size(); ++r)
    world_of[static_cast<size_t>(positions[r])] = static_cast<int>(r);
  std::string out = "[";
  for (int p = 0; p < s.world(); ++p) {
    if (color(s, mesh_coord(s, p)) != mine) continue;
    if (out.size() > 1) out += ",";
    out += std::to_string(world_of[static_cast<size_t>(p)]);
  }
  return out + "]";
}

// "0-7" for consecutive ranks, else "0,2,4".
std::string rank_list(const std::vector<int>& ranks) {
  const bool consecutive = ranks.back() - ranks.front() + 1 == static_cast<int>(ranks.size());
  if (consecutive && ranks.size() > 1)
    return detail::concat(ranks.front(), "-", ranks.back());
  std::string out;
  for (const int r : ranks) {
    if (!out.empty()) out += ",";
    out += std::to_string(r);
  }
  return out;
}

}  // namespace

MeshShape mesh_shape(int world, int tp, int pp, int ep) {
  LOOM_CHECK(world >= 1, "the world size must be >= 1, got ", world);
  LOOM_CHECK(tp >= 1 && world % tp == 0, "--tp ", tp, " must divide the world size ", world,
             " (valid: ", divisors(world), ")");
  LOOM_CHECK(pp >= 1 && (world / tp) % pp == 0, "--pp ", pp, " must divide the world size ",
             world, " / --tp ", tp, " = ", world / tp, " (valid: ", divisors(world / tp), ")");
  const int dp = world / tp / pp;
  LOOM_CHECK(ep >= 1 && dp % ep == 0, "--ep ", ep, " must divide the data-parallel size ", dp,
             " (world ", world, " / --tp ", tp, " / --pp ", pp, "; valid: ", divisors(dp),
             "): the expert-parallel ranks are data-parallel ranks");
  return {pp, dp, tp, ep};
}

MeshCoord mesh_coord(const MeshShape& s, int world_rank) {
  return {world_rank / (s.dp * s.tp), world_rank / s.tp % s.dp, world_rank % s.tp};
}

int mesh_rank(const MeshShape& s, const MeshCoord& c) { return (c.pp * s.dp + c.dp) * s.tp + c.tp; }

std::vector<int> mesh_positions(const comm::Hosts& hosts) {
  std::vector<int> by_host = identity(static_cast<int>(hosts.host_of.size()));
  std::stable_sort(by_host.begin(), by_host.end(), [&](int a, int b) {
    return hosts.host_of[static_cast<size_t>(a)] < hosts.host_of[static_cast<size_t>(b)];
  });
  std::vector<int> positions(by_host.size());
  for (size_t p = 0; p < by_host.size(); ++p)
    positions[static_cast<size_t>(by_host[p])] = static_cast<int>(p);
  return positions;
}

std::string describe_mesh(const MeshShape& s, const std::vector<int>& given) {
  const std::vector<int> positions = given.empty() ? identity(s.world()) : given;
  std::ostringstream out;
  out << "mesh: world " << s.world() << " = pp " << s.pp << " x dp " << s.dp << " x tp " << s.tp
      << " (tp fastest, then dp, then pp)\n";
  for (int r = 0; r < s.world(); ++r) {
    const MeshCoord c = mesh_coord(s, positions[static_cast<size_t>(r)]);
    out << "rank " << r << ": pp " << c.pp << " dp " << c.dp << " tp " << c.tp << " | tp "
        << members(s, positions, r, tp_color) << " dp " << members(s, positions, r, dp_color)
        << " pp " << members(s, positions, r, pp_color) << " embedding "
        << (on_embedding_stage(s, c) ? members(s, positions, r, embedding_color) : "-");
    if (s.ep > 1) out << " ep " << members(s, positions, r, ep_color);
    out << "\n";
  }
  return out.str();
}

std::string describe_placement(const MeshShape& s, const comm::Hosts& hosts) {
  LOOM_CHECK(static_cast<int>(hosts.host_of.size()) == s.world(), "a host map of ",
             hosts.host_of.size(), " ranks for a mesh of ", s.world());
  std::vector<std::vector<int>> ranks_of(static_cast<size_t>(hosts.count()));
  for (int r = 0; r < s.world(); ++r)
    ranks_of[static_cast<size_t>(hosts.host_of[static_cast<size_t>(r)])].push_back(r);
  std::ostringstream out;
  out << "hosts: " << hosts.count() << ":";
  for (size_t h = 0; h < ranks_of.size(); ++h)
    out << (h ? "," : "") << " " << hosts.names[h] << " ranks " << rank_list(ranks_of[h]);
  out << "\n";
  const std::vector<int> positions = mesh_positions(hosts);
  if (positions != identity(s.world()))
    out << "mesh order: by host (the hosts' ranks are interleaved; the mesh places each host's "
           "ranks consecutively)\n";
  for (const auto& [kind, color] : {std::pair<const char*, Color>{"tp", tp_color},
                                    {"dp", dp_color},
                                    {"pp", pp_color}}) {
    // Per group (color): the host of its first member, and whether every member shares it.
    std::vector<int> host_of_group(static_cast<size_t>(s.world()), -1);
    std::vector<bool> inside(static_cast<size_t>(s.world()), true);
    for (int r = 0; r < s.world(); ++r) {
      const auto g = static_cast<size_t>(color(s, mesh_coord(s, positions[static_cast<size_t>(r)])));
      const int host = hosts.host_of[static_cast<size_t>(r)];
      if (host_of_group[g] < 0) host_of_group[g] = host;
      if (host_of_group[g] != host) inside[g] = false;
    }
    int groups = 0, kept = 0;
    for (size_t g = 0; g < host_of_group.size(); ++g)
      if (host_of_group[g] >= 0) ++groups, kept += inside[g];
    out << kind << " groups: " << kept << " of " << groups << " inside a host\n";
  }
  return out.str();
}

Mesh::Mesh(comm::Communicator& world, const MeshShape& shape)
    : world_(world),
      shape_(shape),
      positions_(world.hosts() ? mesh_positions(*world.hosts()) : identity(world.size())),
      coord_(coord_of(world.rank())) {
  LOOM_CHECK(shape.world() == world.size(), "mesh pp ", shape.pp, " x dp ", shape.dp, " x tp ",
             shape.tp, " does not match the world size ", world.size());
  // Keyed by mesh position, so a group's ranks follow the mesh order (tp rank = coord().tp).
  const int p = positions_[static_cast<size_t>(world.rank())];
  tp_ = world.split(tp_color(shape, coord_), p, "tp");
  dp_ = world.split(dp_color(shape, coord_), p, "dp");
  pp_ = world.split(pp_color(shape, coord_), p, "pp");
  embedding_ = world.split(embedding_color(shape, coord_), p, "embedding");
  if (shape.ep > 1) ep_ = world.split(ep_color(shape, coord_), p, "ep");
}

comm::Communicator& Mesh::ep() {
  LOOM_CHECK(ep_ != nullptr, "mesh: no expert-parallel group at ep 1");
  return *ep_;
}

MeshCoord Mesh::coord_of(int world_rank) const {
  return mesh_coord(shape_, positions_.at(static_cast<size_t>(world_rank)));
}

}  // namespace loom::parallel
