#pragma once
// The whole tensors of a model held in pieces (tensor-parallel shards of pipeline stages), for a
// checkpoint: each tensor is gathered when the writer asks for it, over the tp group and then
// the pp group, into the writer's one-tensor scratch buffer. Saving a sharded model therefore
// needs one extra tensor of memory, not whole copies of parameters and moments; the parameters
// and moments of one local tensor come from `pieces` when asked for (under ZeRO the moments, and
// under ZeRO-3 the parameters too, gathered from the shards of the data-parallel group, whose
// ranks then drain the source too).
// Collective over the tp and pp groups of one replica: all of its ranks ask for the same tensors
// in the same order (world rank 0 writes them, the others drain_checkpoint_source).
#include <functional>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/train/checkpoint.hpp"

namespace loom {

class GatheredCheckpointSource : public CheckpointSource {
 public:
  // pieces(kind, local_p, scratch): this rank's parameters (or m, or v) of its tensor local_p, a
  // pointer to local_p.numel floats (its own, or `scratch` filled).
  using PiecesFn =
      std::function<const float*(CheckpointTensor kind, const ParamInfo& local_p, float* scratch)>;

  // Pieces of this rank, laid out by local_layout. tp: its tensor-parallel group;
  // gather_stages(whole_p, t): completes t over the pipeline stages (empty at pp 1). All must
  // outlive this.
  GatheredCheckpointSource(comm::Communicator& tp, const std::vector<ParamInfo>& local_layout,
                           PiecesFn pieces, int64_t optimizer_step,
                           std::function<void(const ParamInfo&, float*)> gather_stages)
      : tp_(tp),
        local_layout_(local_layout),
        pieces_(std::move(pieces)),
        optimizer_step_(optimizer_step),
        gather_stages_(std::move(gather_stages)) {}

  const float* tensor(CheckpointTensor kind, const ParamInfo& whole_p, float* scratch) override;
  int64_t optimizer_step() const override { return optimizer_step_; }

 private:
  comm::Communicator& tp_;
  const std::vector<ParamInfo>& local_layout_;
  PiecesFn pieces_;
  int64_t optimizer_step_;
  std::vector<float> piece_;  // one local tensor's parameters or moments
  std::function<void(const ParamInfo&, float*)> gather_stages_;
};

}  // namespace loom
