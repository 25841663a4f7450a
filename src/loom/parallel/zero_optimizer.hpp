#pragma once
// ZeRO stage 1: AdamW whose moments are sharded over the data-parallel ranks. Rank r owns the
// flat range block_of(n, world, r) (comm::block_of, the same blocks reduce_scatter and allgather
// use). One step:
//   reduce_gradients  reduce-scatter (average) of the whole gradient buffer: rank r gets its
//                     block of the averaged gradient
//   grad_sq_sum       the global sum of squares (for clipping): a scalar all-reduce of each
//                     shard's sum
//   step              scales the shard (clipping), AdamW on the shard, all-gather of parameters
// Optimizer memory per rank: 2 n / world floats instead of 2 n.
// Checkpoints stay world-size independent: full_state() gathers the moments to every rank and
// load_full_state() keeps this rank's block of a full state.
#include <cstddef>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/optim/adamw.hpp"

namespace loom::parallel {

class ZeroOptimizer {
 public:
  ZeroOptimizer(comm::Communicator& comm, const std::vector<ParamInfo>& layout,
                const AdamWParams& hp);

  // Collective. grads: the whole flat buffer; afterwards only this rank's shard is meaningful.
  void reduce_gradients(float* grads);
  // Collective: the sum of squares of the whole averaged gradient (from every rank's shard).
  double grad_sq_sum(const float* grads);
  // Collective. Applies `clip` (1: none) to the shard's gradients, updates the shard of params,
  // then all-gathers params so every rank holds the whole updated model.
  void step(float* params, float* grads, float lr, float clip);

  // Collective: an optimizer over the whole buffer holding every rank's moments.
  AdamW full_state() const;
  void load_full_state(const AdamW& full);

  comm::Block shard() const { return shard_; }
  const AdamW& shard_optimizer() const { return opt_; }

 private:
  comm::Communicator& comm_;
  std::vector<ParamInfo> layout_;
  AdamWParams hp_;
  size_t count_;
  comm::Block shard_;
  AdamW opt_;
};

}  // namespace loom::parallel
