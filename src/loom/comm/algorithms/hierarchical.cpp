// Two-level ("hierarchical", as Horovod's and NCCL's tree/ring over nodes) collectives: a group
// whose members sit on H hosts with L of them each (HostLayout) talks over two transports,
// `local` (the L ranks of this host, local rank = index on the host) and `cross` (the H ranks
// with this rank's local index, one per host, cross rank = host index). n = H x L.
//   all-reduce     = reduce-scatter inside the host (local rank l holds the host's sum of
//                    block_of(count, L, l)), all-reduce of that shard across hosts, all-gather
//                    inside the host. Inter-host bytes per rank: 2(H-1)/H x count/L, against
//                    2(n-1)/n x count for a flat ring whose every hop may cross hosts.
//   reduce-scatter = ring reduce-scatter inside the host in which local rank l collects the
//                    world blocks of every rank with local index l, then a ring reduce-scatter
//                    of those blocks across hosts: each rank ends with its own world block.
//   all-gather     = the reverse: ring all-gather of each rank's world block across hosts, then
//                    inside the host.
//   broadcast      = across hosts among the ranks with the root's local index, then inside
//                    every host from that rank.
// `inner` (ring, tree or naive) runs the all-reduce shard and the broadcasts at each level; the
// reduce-scatter and all-gather levels are rings over explicit blocks. Sums are taken in a
// different order than the flat algorithms' (host first), so float results may differ from them
// in the last bits; integer-valued inputs give identical results. A failure names the link.
#include "loom/comm/algorithms/algorithms.hpp"

namespace loom::comm::algorithms {
namespace {

// Rank i of the level owns the blocks owned[i] (the same number of blocks on every rank).
using Owned = std::vector<std::vector<Block>>;

void ring_reduce_scatter_owned(Transport& t, const Collective& c, const Owned& owned) {
  const int n = t.size(), r = t.rank();
  const int next = ring_position(r + 1, n), prev = ring_position(r - 1, n);
  for (int s = 0; s + 1 < n; ++s) {
    const auto& out = owned[static_cast<size_t>(ring_position(r - 1 - s, n))];
    const auto& in = owned[static_cast<size_t>(ring_position(r - 2 - s, n))];
    for (size_t k = 0; k < out.size(); ++k)
      t.exchange(next, element_span(c, out[k].offset, out[k].count), prev,
                 in[k].count * dtype_size(c.dtype), reduce_sink(c, in[k].offset));
  }
}

void ring_allgather_owned(Transport& t, const Collective& c, const Owned& owned) {
  const int n = t.size(), r = t.rank();
  const int next = ring_position(r + 1, n), prev = ring_position(r - 1, n);
  for (int s = 0; s + 1 < n; ++s) {
    const auto& out = owned[static_cast<size_t>(ring_position(r - s, n))];
    const auto& in = owned[static_cast<size_t>(ring_position(r - 1 - s, n))];
    for (size_t k = 0; k < out.size(); ++k)
      t.exchange(next, element_span(c, out[k].offset, out[k].count), prev,
                 in[k].count * dtype_size(c.dtype), copy_sink_at(c, in[k].offset));
  }
}

// Runs one level's step; a peer failure is re-thrown naming the peer's rank in the whole group
// and the link it was reached over.
template <typename Body>
void on_link(const char* link, const std::vector<int>& group_rank_of, const Body& body) {
  try {
    body();
  } catch (const PeerFailure& e) {
    throw PeerFailure(group_rank_of[static_cast<size_t>(e.peer)],
                      detail::concat(link, " link: ", e.what()));
  }
}

Collective as(const Collective& c, OpKind kind, ReduceOp op) {
  Collective out = c;
  out.kind = kind;
  out.op = op;
  return out;
}

}  // namespace

void hierarchical(Transport& local, Transport& cross, const HostLayout& layout, Family inner,
                  const Collective& c) {
  const int hosts = layout.hosts(), per_host = layout.per_host(), n = hosts * per_host;
  const int h = cross.rank(), l = local.rank();
  const std::vector<int>& host_ranks = layout.ranks[static_cast<size_t>(h)];
  std::vector<int> cross_ranks;
  for (const auto& on_host : layout.ranks) cross_ranks.push_back(on_host[static_cast<size_t>(l)]);
  auto world_block = [&](int group_rank) { return block_of(c.count, n, group_rank); };
  // Per local index: the world blocks of the ranks with that index on every host; per host: the
  // world block of its rank with this local index.
  Owned by_local_index(static_cast<size_t>(per_host)), by_host;
  for (int j = 0; j < per_host; ++j)
    for (const auto& on_host : layout.ranks)
      by_local_index[static_cast<size_t>(j)].push_back(world_block(on_host[static_cast<size_t>(j)]));
  for (int g : cross_ranks) by_host.push_back({world_block(g)});

  switch (c.kind) {
    case OpKind::AllReduce: {
      on_link("intra-host", host_ranks,
              [&] { inner(local, as(c, OpKind::ReduceScatter, ReduceOp::Sum)); });
      const Block shard = block_of(c.count, per_host, l);
      Collective part = as(c, OpKind::AllReduce, ReduceOp::Sum);
      part.data = element_ptr(c, shard.offset);
      part.count = shard.count;
      on_link("inter-host", cross_ranks, [&] { inner(cross, part); });
      finish_reduction(c, shard.offset, shard.count, n);
      on_link("intra-host", host_ranks, [&] { inner(local, as(c, OpKind::AllGather, c.op)); });
      return;
    }
    case OpKind::ReduceScatter: {
      const Collective sum = as(c, OpKind::ReduceScatter, ReduceOp::Sum);
      on_link("intra-host", host_ranks, [&] { ring_reduce_scatter_owned(local, sum, by_local_index); });
      on_link("inter-host", cross_ranks, [&] { ring_reduce_scatter_owned(cross, sum, by_host); });
      const Block mine = world_block(host_ranks[static_cast<size_t>(l)]);
      finish_reduction(c, mine.offset, mine.count, n);
      return;
    }
    case OpKind::AllGather:
      on_link("inter-host", cross_ranks, [&] { ring_allgather_owned(cross, c, by_host); });
      on_link("intra-host", host_ranks, [&] { ring_allgather_owned(local, c, by_local_index); });
      return;
    case OpKind::Broadcast: {
      const int root_host = layout.host_of(c.root), root_index = layout.local_index(c.root);
      Collective step = c;
      if (l == root_index) {
        step.root = root_host;
        on_link("inter-host", cross_ranks, [&] { inner(cross, step); });
      }
      step.root = root_index;
      on_link("intra-host", host_ranks, [&] { inner(local, step); });
      return;
    }
  }
}

}  // namespace loom::comm::algorithms
