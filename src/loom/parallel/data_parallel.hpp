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
//   world > 1, zero 3  ZeRO-3 (Zero3Params): as ZeRO-2 with one bucket per backward slice (the
//                      embedding, each block, ln_f), and the parameters sharded the same way: a
//                      rank keeps its blocks, the model reads working buffers that each unit's
//                      parameters are all-gathered into before it runs (prefetched one unit
//                      ahead), and the optimizer updates the shard without an all-gather.
//                      Gradient accumulation is sharded as under ZeRO-2: every micro-batch's
//                      backward reduce-scatters the blocks' and ln_f's gradients and sums this
//                      rank's blocks; the tied embedding's gradient sums in its buffer and is
//                      reduce-scattered in the step's last backward.
// The clip norm is always the global norm of the averaged gradient. Every method marked
// collective must be called by all ranks in the same order.
// Under tensor parallelism (tp group given) each rank holds shards: gradients are still averaged
// over the data-parallel group only, and the norm sums the shards over the tp group, counting
// the replicated tensors (LayerNorms, row-parallel biases) once.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "loom/comm/communicator.hpp"
#include "loom/model/gpt.hpp"
#include "loom/optim/adamw.hpp"
#include "loom/parallel/gradient_buckets.hpp"
#include "loom/parallel/sharded_gradients.hpp"
#include "loom/parallel/zero3_params.hpp"
#include "loom/parallel/zero_optimizer.hpp"

namespace loom::parallel {

struct DataParallelOptions {
  int zero = 0;  // ZeRO stage: 0, 1, 2 or 3
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

  // Collective: throws unless every rank holds the same parameters (ZeRO-3: each holds its own
  // shard, nothing is replicated to compare).
  void check_identical_replicas();

  // Fills the model's parameters: fill(params) writes all of them, laid out by the model's
  // layout, into params (the model's own buffer; under ZeRO-3 a temporary one, of which this
  // rank keeps its shard). For initialisation, resuming, and loading pretrained weights.
  void load_params(const std::function<void(float*)>& fill);
  // Whether one replica can run the model while the others do not (not under ZeRO-3: its
  // gathers are collective over the group, so every rank runs every forward).
  bool replica_runs_alone() const { return zero3_ == nullptr; }
  // Tensor p of the model's layout, for saving a checkpoint one tensor at a time: a pointer into
  // the model, or under ZeRO-3 `scratch` (p.numel floats) gathered from the shards (collective).
  const float* param(const ParamInfo& p, float* scratch);

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
  // Bytes of parameter memory this rank holds: the model's flat buffer, or ZeRO-3's shard and
  // working buffers (Zero3Params::bytes).
  size_t parameter_bytes() const;
  // ZeRO-3: how the parameter gathers overlapped compute over `seconds` of training, e.g.
  // "ZeRO-3: 180 parameter gathers, 171 (95%) complete when their unit ran; 0.12 s waiting for
  // them (1.5% of 8.0 s)"; empty otherwise.
  std::string gather_summary(double seconds) const;

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
  std::unique_ptr<ShardedGradients> sharded_;  // zero 2 and 3, world > 1
  std::unique_ptr<Zero3Params> zero3_;         // zero 3, world > 1
};

}  // namespace loom::parallel
