#pragma once
// The process mesh: world ranks arranged as pp x dp x tp, tp varying fastest (tp peers are
// neighbours in mesh order, which keeps each host's ranks together (mesh_positions), so they
// share a host and its fastest links), then dp, then pp, as Megatron-LM orders them:
//   mesh position = (pp * dp_size + dp) * tp_size + tp
// Every parallelism strategy asks the mesh for its group:
//   tp         the tp_size ranks of one model replica's stage (tensor-parallel all-reduces)
//   dp         the ranks holding the same piece of the model (gradient averaging, ZeRO)
//   pp         the stages of one (dp, tp) column (activations and gradients, point to point)
//   embedding  the first and last stage of that column, which both hold the tied wte
//              (one rank when pp is 1)
//   ep         expert parallelism (mixture of experts): ep consecutive ranks of a dp group,
//              dp ranks d with the same d / ep, which split each MoE block's experts between
//              them (ep rank = d % ep, as Megatron-Core's expert-model-parallel groups sit inside
//              its data-parallel ones); made only when ep > 1
// The groups are made once, by Communicator::split, in the same order on every rank.
#include <memory>
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"

namespace loom::parallel {

struct MeshShape {
  int pp = 1, dp = 1, tp = 1;
  int ep = 1;  // expert-parallel ranks inside each dp group (divides dp); not a world dimension
  int world() const { return pp * dp * tp; }
};

struct MeshCoord {
  int pp = 0, dp = 0, tp = 0;
};

// The shape of `world` ranks split into tp-wide and pp-deep pieces (dp = what remains), with ep
// expert-parallel ranks inside each dp group. Throws loom::Error naming the flag (--tp, --pp,
// --ep), its value and the valid values when they do not divide the world (ep: dp).
MeshShape mesh_shape(int world, int tp, int pp, int ep = 1);

MeshCoord mesh_coord(const MeshShape& s, int position);
int mesh_rank(const MeshShape& s, const MeshCoord& c);

// The mesh position of every world rank (what mesh_coord takes): the ranks ordered by host, then
// by world rank, so each host's ranks are consecutive in the mesh and tp groups (the fastest
// dimension) stay inside hosts when tp divides the ranks per host, dp and pp going across.
// `mpirun --map-by node` deals ranks to hosts round-robin; this undoes it. The identity when
// each host's ranks are already consecutive (one host, `--map-by ppr:N:node`, `loom launch`),
// and always world rank 0 -> position 0.
std::vector<int> mesh_positions(const comm::Hosts& hosts);

// One line per world rank: its coordinates and the world ranks of its groups, e.g.
//   rank 3: pp 0 dp 1 tp 1 | tp [2,3] dp [1,3] pp [3] embedding [3]
// (and " ep [..]" at the end when ep > 1).
// `positions`: mesh_positions (empty: the identity).
std::string describe_mesh(const MeshShape& s, const std::vector<int>& positions = {});

// Where the groups of that mesh fall on `hosts`: the hosts and their ranks, whether the mesh
// reorders the ranks (interleaved hosts), then per group kind how many of its groups stay inside
// one host (their collectives never leave it), e.g.
//   hosts: 2 (8 ranks each): host 0 ranks 0-7, host 1 ranks 8-15
//   tp groups: 2 of 2 inside a host
std::string describe_placement(const MeshShape& s, const comm::Hosts& hosts);

class Mesh {
 public:
  // Collective over `world` (which must outlive the mesh): makes the groups, placing the ranks
  // by mesh_positions of the world's hosts when they are known.
  Mesh(comm::Communicator& world, const MeshShape& shape);

  const MeshShape& shape() const { return shape_; }
  const MeshCoord& coord() const { return coord_; }
  // The mesh coordinates of any world rank.
  MeshCoord coord_of(int world_rank) const;
  comm::Communicator& world() { return world_; }
  comm::Communicator& tp() { return *tp_; }
  comm::Communicator& dp() { return *dp_; }
  comm::Communicator& pp() { return *pp_; }
  comm::Communicator& embedding() { return *embedding_; }
  // The expert-parallel group (ep > 1 only).
  comm::Communicator& ep();

 private:
  comm::Communicator& world_;
  MeshShape shape_;
  std::vector<int> positions_;  // world rank -> mesh position
  MeshCoord coord_;
  std::unique_ptr<comm::Communicator> tp_, dp_, pp_, embedding_, ep_;
};

}  // namespace loom::parallel
