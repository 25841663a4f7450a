#pragma once
// Data parallelism for the trainer: everything between "gradients of this rank's micro-batches
// are computed" and "the parameters are updated", identically on every rank.
//   world 1            plain AdamW over the whole buffer; no communication.
//   world > 1, zero 0  gradients averaged by bucketed all-reduce overlapped with the last
//                      backward (GradientBuckets); every rank runs the same full AdamW step.
//   world > 1, zero 1  ZeRO-1 (ZeroOptimizer): reduce-scatter, sharded AdamW, all-gather.
//   world > 1, zero 2  ZeRO-2 (ShardedGradients): the model's gradients live in a small pool of
//                      bucket buffers, reduce-scattered bucket by bucket during every backward,
//                      so a rank holds only its shard of the averaged gradient (plus the pool
//                      and the tied embedding's buffer); each bucket is one optimizer partition.
// The clip norm is always the global norm of the averaged gradient. Every method marked
// collective must be called by all ranks in the same order.
// Under tensor parallelism (tp group given) each rank holds shards: gradients are still averaged
// over the data-parallel group only, and the norm sums the shards over the tp group, counting
// the replicated tensors (LayerNorms, row-parallel biases) once.
#include <functional>
#include <memory>
#include <optional>

#include "loom/comm/communicator.hpp"
#include "loom/model/gpt.hpp"
#include "loom/optim/adamw.hpp"
#include "loom/parallel/gradient_buckets.hpp"
#include "loom/parallel/sharded_gradients.hpp"
#include "loom/parallel/zero_optimizer.hpp"

namespace loom::parallel {

struct DataParallelOptions {
  int zero = 0;  // ZeRO stage: 0, 1 or 2
  double bucket_mb = 25;
  bool bf16_reduce = false;  // zero 0: all-reduce the gradients in bf16 (GradientBuckets)
};

class DataParallel {
 public:
  // comm: the data-parallel group, or nullptr for a single process; tp: the model's
  // tensor-parallel group, or nullptr for tp 1. `model` must outlive this.
  DataParallel(comm::Communicator* comm, GPT& model, const AdamWParams& hp,
               const DataParallelOptions& opts, comm::Communicator* tp = nullptr);

  int rank() const { return comm_ ? comm_->rank() : 0; }
  int world() const { return comm_ ? comm_->size() : 1; }

  // Collective: throws unless every rank holds the same parameters.
  void check_identical_replicas();

  // The on_ready callback for the backward of one micro-batch (`last`: the step's last; empty
  // when there is nothing to overlap). Under ZeRO-2 every micro-batch's backward reduces (its
  // gradients do not stay on the rank), otherwise only the last one's.
  GPT::GradReadyFn backward_hook(bool last);
  // Collective: finishes averaging the gradients over the ranks.
  void reduce_gradients();
  // Collective (under ZeRO): the global sum of squares of the averaged gradient, for clipping,
  // leaving out the gradient's flat range `skip` (a tensor another rank counts).
  double grad_sq_sum(FlatRange skip = {0, 0});
  // Collective (under ZeRO): multiplies the gradients by clip, then one AdamW step at lr.
  void step(float lr, float clip);

  // Collective: the sum of x over the ranks (close to double precision).
  double sum(double x);

  // Whether the optimizer's moments are sharded over the ranks (ZeRO): every rank then takes
  // part in moment().
  bool shards_moments() const { return zero_.has_value(); }
  // This rank's moments (m, or v when `second`) of tensor p of the model's layout, for saving a
  // world-size-independent checkpoint one tensor at a time: a pointer into the optimizer, or
  // under ZeRO `scratch` (p.numel floats) filled from the shards (collective: every rank asks
  // for the same tensors in the same order).
  const float* moment(bool second, const ParamInfo& p, float* scratch);
  int64_t optimizer_step() const;
  // Fills the optimizer from a whole-buffer state (`fill` receives an optimizer to load into);
  // under ZeRO this rank keeps its shard.
  void load_full_optimizer(const std::function<void(AdamW&)>& fill);

  // Bytes of gradient memory this rank holds: the model's flat buffer, or ZeRO-2's pool,
  // embedding buffer and shard.
  size_t gradient_bytes() const;

 private:
  comm::Communicator* comm_;
  comm::Communicator* tp_;
  GPT& model_;
  AdamWParams hp_;
  std::optional<AdamW> adamw_;           // zero 0
  std::optional<ZeroOptimizer> zero_;    // zero 1 and 2
  // This rank's averaged gradient for ZeroOptimizer, after reduce_gradients().
  ZeroOptimizer::Shard gradient_shard();

  std::optional<GradientBuckets> buckets_;  // zero 0, world > 1
  std::unique_ptr<ShardedGradients> sharded_;  // zero 2, world > 1
};

}  // namespace loom::parallel
