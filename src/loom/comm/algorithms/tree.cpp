// Binary-tree algorithms over positions p = (rank - root) mod n: the children of p are 2p+1 and
// 2p+2, its parent (p-1)/2. The buffer is cut into chunks; for each chunk a rank reduces what its
// children send, then passes it up, so while the root works on chunk i its children already
// work on chunk i+1 (the transport buffers the sends).
//   all-reduce     = tree reduce to rank 0, then tree broadcast from rank 0.
//   reduce-scatter = tree reduce to rank 0, then rank 0 sends every rank its block.
//   all-gather     = every rank sends its block to rank 0, then tree broadcast.
//   broadcast      = tree broadcast from the root.
#include "loom/comm/algorithms/algorithms.hpp"

namespace loom::comm::algorithms {
namespace {

struct TreeLinks {
  int parent = -1;
  int children[2] = {-1, -1};
};

TreeLinks links(int n, int rank, int root) {
  const int pos = (rank - root + n) % n;
  auto rank_at = [&](int p) { return (p + root) % n; };
  TreeLinks l;
  if (pos > 0) l.parent = rank_at((pos - 1) / 2);
  for (int k = 0; k < 2; ++k)
    if (2 * pos + 1 + k < n) l.children[k] = rank_at(2 * pos + 1 + k);
  return l;
}

size_t chunk_elements(const Collective& c) {
  return std::max<size_t>(1, kPipelineChunkBytes / dtype_size(c.dtype));
}

void tree_reduce(Transport& t, const Collective& c, int root) {
  const TreeLinks l = links(t.size(), t.rank(), root);
  const size_t chunk = chunk_elements(c), es = dtype_size(c.dtype);
  for (size_t first = 0; first < c.count; first += chunk) {
    const size_t len = std::min(chunk, c.count - first);
    for (int child : l.children)
      if (child >= 0) t.exchange(-1, {}, child, len * es, reduce_sink(c, first));
    if (l.parent >= 0) t.send(l.parent, element_span(c, first, len));
  }
}

void tree_broadcast(Transport& t, const Collective& c, int root) {
  const TreeLinks l = links(t.size(), t.rank(), root);
  const size_t chunk = chunk_elements(c), es = dtype_size(c.dtype);
  for (size_t first = 0; first < c.count; first += chunk) {
    const size_t len = std::min(chunk, c.count - first);
    if (l.parent >= 0) t.recv_into(l.parent, element_ptr(c, first), len * es);
    for (int child : l.children)
      if (child >= 0) t.send(child, element_span(c, first, len));
  }
}

}  // namespace

void tree(Transport& t, const Collective& c) {
  const int n = t.size();
  if (n == 1) return;
  switch (c.kind) {
    case OpKind::AllReduce:
      tree_reduce(t, c, 0);
      if (t.rank() == 0) finish_reduction(c, 0, c.count, n);
      tree_broadcast(t, c, 0);
      return;
    case OpKind::ReduceScatter:
      tree_reduce(t, c, 0);
      if (t.rank() == 0) finish_reduction(c, 0, c.count, n);
      scatter_blocks_from_root(t, c, 0);
      return;
    case OpKind::AllGather:
      gather_blocks_to_root(t, c, 0);
      tree_broadcast(t, c, 0);
      return;
    case OpKind::Broadcast: tree_broadcast(t, c, c.root); return;
  }
}

}  // namespace loom::comm::algorithms
