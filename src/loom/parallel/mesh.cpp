#include "loom/parallel/mesh.hpp"

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

std::string members(const MeshShape& s, int world_rank, int (*color)(const MeshShape&, const MeshCoord&)) {
  const int mine = color(s, mesh_coord(s, world_rank));
  std::string out = "[";
  for (int r = 0; r < s.world(); ++r) {
    if (color(s, mesh_coord(s, r)) != mine) continue;
    if (out.size() > 1) out += ",";
    out += std::to_string(r);
  }
  return out + "]";
}

}  // namespace

MeshShape mesh_shape(int world, int tp, int pp) {
  LOOM_CHECK(world >= 1, "the world size must be >= 1, got ", world);
  LOOM_CHECK(tp >= 1 && world % tp == 0, "--tp ", tp, " must divide the world size ", world,
             " (valid: ", divisors(world), ")");
  LOOM_CHECK(pp >= 1 && (world / tp) % pp == 0, "--pp ", pp, " must divide the world size ",
             world, " / --tp ", tp, " = ", world / tp, " (valid: ", divisors(world / tp), ")");
  return {pp, world / tp / pp, tp};
}

MeshCoord mesh_coord(const MeshShape& s, int world_rank) {
  return {world_rank / (s.dp * s.tp), world_rank / s.tp % s.dp, world_rank % s.tp};
}

int mesh_rank(const MeshShape& s, const MeshCoord& c) { return (c.pp * s.dp + c.dp) * s.tp + c.tp; }

std::string describe_mesh(const MeshShape& s) {
  std::ostringstream out;
  out << "mesh: world " << s.world() << " = pp " << s.pp << " x dp " << s.dp << " x tp " << s.tp
      << " (tp fastest, then dp, then pp)\n";
  for (int r = 0; r < s.world(); ++r) {
    const MeshCoord c = mesh_coord(s, r);
    out << "rank " << r << ": pp " << c.pp << " dp " << c.dp << " tp " << c.tp << " | tp "
        << members(s, r, tp_color) << " dp " << members(s, r, dp_color) << " pp "
        << members(s, r, pp_color) << " embedding "
        << (on_embedding_stage(s, c) ? members(s, r, embedding_color) : "-") << "\n";
  }
  return out.str();
}

std::string describe_placement(const MeshShape& s, int ranks_per_host) {
  LOOM_CHECK(ranks_per_host >= 1 && s.world() % ranks_per_host == 0, "--ranks-per-host ",
             ranks_per_host, " must divide the world size ", s.world(), " (valid: ",
             divisors(s.world()), ")");
  const int hosts = s.world() / ranks_per_host;
  std::ostringstream out;
  out << "hosts: " << hosts << " x " << ranks_per_host << " ranks:";
  for (int h = 0; h < hosts; ++h)
    out << (h ? "," : "") << " host " << h << " ranks " << h * ranks_per_host << "-"
        << (h + 1) * ranks_per_host - 1;
  out << "\n";
  struct Kind {
    const char* name;
    int (*color)(const MeshShape&, const MeshCoord&);
  };
  for (const Kind& k : {Kind{"tp", tp_color}, Kind{"dp", dp_color}, Kind{"pp", pp_color}}) {
    // Per group (color): the host of its first member, and whether every member shares it.
    std::vector<int> host_of_group(static_cast<size_t>(s.world()), -1);
    std::vector<bool> inside(static_cast<size_t>(s.world()), true);
    for (int r = 0; r < s.world(); ++r) {
      const auto g = static_cast<size_t>(k.color(s, mesh_coord(s, r)));
      if (host_of_group[g] < 0) host_of_group[g] = r / ranks_per_host;
      if (host_of_group[g] != r / ranks_per_host) inside[g] = false;
    }
    int groups = 0, kept = 0;
    for (size_t g = 0; g < host_of_group.size(); ++g)
      if (host_of_group[g] >= 0) ++groups, kept += inside[g];
    out << k.name << " groups: " << kept << " of " << groups << " inside a host\n";
  }
  return out.str();
}

Mesh::Mesh(comm::Communicator& world, const MeshShape& shape)
    : world_(world), shape_(shape), coord_(mesh_coord(shape, world.rank())) {
  LOOM_CHECK(shape.world() == world.size(), "mesh pp ", shape.pp, " x dp ", shape.dp, " x tp ",
             shape.tp, " does not match the world size ", world.size());
  const int r = world.rank();
  tp_ = world.split(tp_color(shape, coord_), r, "tp");
  dp_ = world.split(dp_color(shape, coord_), r, "dp");
  pp_ = world.split(pp_color(shape, coord_), r, "pp");
  embedding_ = world.split(embedding_color(shape, coord_), r, "embedding");
}

}  // namespace loom::parallel
