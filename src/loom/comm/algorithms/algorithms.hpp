#pragma once
// Collective algorithms written once over the point-to-point Transport, one family per file:
//   ring.cpp   reduce-scatter + all-gather around a ring; pipelined chain broadcast.
//              Bandwidth-optimal (each rank sends 2(n-1)/n of the data); n-1 latency steps.
//   tree.cpp   binary tree rooted at rank 0: reduce up, broadcast down, chunked so the levels
//              work on different chunks at once. log2(n) latency steps; the root's links carry
//              twice the data, so it wins for small messages and loses for large ones.
//   naive.cpp  everyone sends to the root, the root reduces and sends back (a parameter
//              server): the root's link carries (n-1) times the data. The reference baseline.
//   all_to_all.cpp  pairwise exchange: every rank sends each peer its own piece (n-1 steps).
//   hierarchical.cpp  two levels, inside each host and across hosts, each run by one of the
//              families above (see topology.hpp for when a group uses it).
// Each entry runs any Collective (see types.hpp); all ranks of the group call it with the same
// arguments.
#include <vector>

#include "loom/comm/topology.hpp"
#include "loom/comm/transport.hpp"
#include "loom/comm/types.hpp"

namespace loom::comm::algorithms {

void ring(Transport& t, const Collective& c);
void tree(Transport& t, const Collective& c);
void naive(Transport& t, const Collective& c);

// One of the families above.
using Family = void (*)(Transport&, const Collective&);
// Two-level form for a group laid out as `layout`: `local` joins this rank to the others on its
// host (local rank = its index there), `cross` to the ranks with its local index on every host
// (cross rank = host index); `inner` runs each level.
void hierarchical(Transport& local, Transport& cross, const HostLayout& layout, Family inner,
                  const Collective& c);

// All-to-all of pieces of any size: send holds the pieces for ranks 0..n-1 back to back
// (send_bytes[p] bytes for rank p), recv receives the pieces from ranks 0..n-1 back to back
// (recv_bytes[p] from rank p, which must equal what p sends this rank). Flat (no two levels).
void all_to_all(Transport& t, const std::byte* send, std::span<const size_t> send_bytes,
                std::byte* recv, std::span<const size_t> recv_bytes);

// Dissemination barrier: ceil(log2 n) rounds of one-byte messages.
void barrier(Transport& t);

// Pieces shared by the families (naive.cpp): the root receives every block of an all-gather
// layout / sends every rank its block.
void gather_blocks_to_root(Transport& t, const Collective& c, int root);
void scatter_blocks_from_root(Transport& t, const Collective& c, int root);

// The position `a` steps around a ring of n (a may be negative): ((a % n) + n) % n.
inline int ring_position(int a, int n) { return ((a % n) + n) % n; }

// Helpers over a Collective's buffer.
std::byte* element_ptr(const Collective& c, size_t index);
std::span<const std::byte> element_span(const Collective& c, size_t index, size_t count);
Sink reduce_sink(const Collective& c, size_t first_element);
Sink copy_sink_at(const Collective& c, size_t first_element);
// Applies ReduceOp::Avg (divide by the group size) to `count` elements from `first`; no-op for
// Sum.
void finish_reduction(const Collective& c, size_t first, size_t count, int group_size);

// Large messages are cut into chunks of this many bytes so that consecutive hops of the tree and
// the broadcast chain work on different chunks at the same time.
constexpr size_t kPipelineChunkBytes = 256 * 1024;
// The ring all-reduce works on segments of size() blocks of this many bytes, so that what a rank
// reduces is still cached when it sends it on (ring.cpp). Measured at 64 MiB, 2 ranks (bus
// bandwidth / memcpy, medians): 128 or 256 KiB blocks 0.72, 512 KiB-1 MiB 0.66, unsegmented 0.57.
constexpr size_t kRingSegmentBlockBytes = 128 * 1024;

}  // namespace loom::comm::algorithms
