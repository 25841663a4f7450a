// Naive algorithms (a parameter server): every rank sends its whole contribution to the root,
// which reduces and sends the result to every rank. Simple and obviously correct, the baseline
// the others are measured against; the root's link carries (n-1) times the data.
#include "loom/comm/algorithms/algorithms.hpp"

namespace loom::comm::algorithms {
namespace {

void reduce_to_root(Transport& t, const Collective& c, int root) {
  if (t.rank() != root) {
    t.send(root, element_span(c, 0, c.count));
    return;
  }
  for (int r = 0; r < t.size(); ++r)
    if (r != root) t.exchange(-1, {}, r, c.count * dtype_size(c.dtype), reduce_sink(c, 0));
  finish_reduction(c, 0, c.count, t.size());
}

void broadcast_from_root(Transport& t, const Collective& c, int root) {
  if (t.rank() != root) {
    t.recv_into(root, c.data, c.count * dtype_size(c.dtype));
    return;
  }
  for (int r = 0; r < t.size(); ++r)
    if (r != root) t.send(r, element_span(c, 0, c.count));
}

}  // namespace

void gather_blocks_to_root(Transport& t, const Collective& c, int root) {
  const int n = t.size();
  if (t.rank() != root) {
    const Block mine = block_of(c.count, n, t.rank());
    t.send(root, element_span(c, mine.offset, mine.count));
    return;
  }
  for (int r = 0; r < n; ++r) {
    if (r == root) continue;
    const Block b = block_of(c.count, n, r);
    t.recv_into(r, element_ptr(c, b.offset), b.count * dtype_size(c.dtype));
  }
}

void scatter_blocks_from_root(Transport& t, const Collective& c, int root) {
  const int n = t.size();
  if (t.rank() != root) {
    const Block mine = block_of(c.count, n, t.rank());
    t.recv_into(root, element_ptr(c, mine.offset), mine.count * dtype_size(c.dtype));
    return;
  }
  for (int r = 0; r < n; ++r) {
    if (r == root) continue;
    const Block b = block_of(c.count, n, r);
    t.send(r, element_span(c, b.offset, b.count));
  }
}

void naive(Transport& t, const Collective& c) {
  if (t.size() == 1) return;
  switch (c.kind) {
    case OpKind::AllReduce:
      reduce_to_root(t, c, 0);
      broadcast_from_root(t, c, 0);
      return;
    case OpKind::ReduceScatter:
      reduce_to_root(t, c, 0);
      scatter_blocks_from_root(t, c, 0);
      return;
    case OpKind::AllGather:
      gather_blocks_to_root(t, c, 0);
      broadcast_from_root(t, c, 0);
      return;
    case OpKind::Broadcast: broadcast_from_root(t, c, c.root); return;
  }
}

}  // namespace loom::comm::algorithms
