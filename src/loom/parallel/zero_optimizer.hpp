#pragma once
// ZeRO stages 1, 2 and 3: AdamW whose moments are sharded over the data-parallel ranks. The flat
// buffer is cut into partitions: one (the whole buffer) for stage 1, the gradient buckets for
// stages 2 and 3 (where the parameters are sharded too: step_shard). In partition [b, e) rank r
// owns the flat range b + block_of(e - b, world, r) (comm::block_of, the blocks reduce_scatter
// and allgather use on that partition), so its shard is one block per partition. One step:
//   gradients   reduce-scatter (average) of each partition: rank r gets its blocks of the
//               averaged gradient. Stage 1: reduce_gradients() on the model's flat buffer after
//               backward; stage 2: ShardedGradients reduce-scatters each bucket while backward
//               runs and keeps only this rank's blocks.
//   grad_sq_sum the global sum of squares (for clipping): a scalar all-reduce of the shards' sums
//   step        scales the shard (clipping), AdamW on the shard, all-gather of each partition's
//               parameters
// The gradient shard is passed as one pointer per partition (its block, wherever it is stored),
// so the optimizer never needs the whole gradient. Optimizer memory per rank: 2 n / world floats
// instead of 2 n. Checkpoints stay world-size independent: full_state() gathers the moments to
// every rank and load_full_state() keeps this rank's blocks of a full state.
#include <cstddef>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/optim/adamw.hpp"

namespace loom::parallel {

struct FlatRange {
  size_t begin, end;
};

class ZeroOptimizer {
 public:
  // `partitions` must cover the whole buffer without overlapping (any order); empty = one
  // partition over the whole buffer (stage 1).
  ZeroOptimizer(comm::Communicator& comm, const std::vector<ParamInfo>& layout,
                const AdamWParams& hp, std::vector<FlatRange> partitions = {});

  // Collective (stage 1). grads: the whole flat buffer; afterwards only this rank's shard is
  // meaningful.
  void reduce_gradients(float* grads);

  // This rank's shard: one flat range per partition, in buffer order.
  std::vector<FlatRange> shard_ranges() const;
  // shard[k]: this rank's averaged gradient of shard_ranges()[k] (that many floats).
  using Shard = std::vector<float*>;

  // Collective: the sum of squares of the whole averaged gradient (from every rank's shard).
  // count_replicated false leaves out the tensors replicated over tensor parallelism (see
  // sharded_grad_sq_sum), for every tp rank but one. `skip` (flat indices of the whole buffer) is
  // left out (as if zero).
  double grad_sq_sum(const Shard& shard, bool count_replicated = true, FlatRange skip = {0, 0});
  // Collective. Applies `clip` (1: none) to the shard's gradients, updates the shard of params,
  // then all-gathers params so every rank holds the whole updated model.
  void step(float* params, const Shard& shard, float lr, float clip);
  // ZeRO-3: the same update on this rank's parameters only (params[k]: its block of partition
  // k, as `grads`), which stay sharded: no all-gather. Not collective.
  void step_shard(const Shard& params, const Shard& grads, float lr, float clip);

  // Collective: out[0, r.end - r.begin) <- the moments (m, or v when `second`) of flat range r
  // (e.g. one tensor), from every rank's shard: a checkpoint gathers one tensor at a time, with
  // no more extra memory than that tensor.
  void gather_moments(bool second, FlatRange r, float* out) const;
  int64_t step_count() const { return parts_.front().opt.step_count(); }
  void load_full_state(const AdamW& full);

 private:
  struct Part {
    FlatRange range;                   // the partition
    FlatRange mine;                    // this rank's block of it
    std::vector<ParamInfo> layout;     // the tensors' pieces in `mine`, offsets from mine.begin
    AdamW opt;                         // over `mine` (indices from mine.begin)
  };
  comm::Communicator& comm_;
  size_t count_;
  std::vector<Part> parts_;
};

}  // namespace loom::parallel
