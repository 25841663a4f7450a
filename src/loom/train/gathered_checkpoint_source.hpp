#pragma once
// The whole tensors of a model held in pieces (tensor-parallel shards of pipeline stages), for a
// checkpoint: each tensor is gathered when the writer asks for it, over the tp group and then
// the pp group, into the writer's one-tensor scratch buffer. Saving a sharded model therefore
// needs one extra tensor of memory, not whole copies of parameters and moments.
// Collective over the tp and pp groups of one replica: all of its ranks ask for the same tensors
// in the same order (world rank 0 writes them, the others drain_checkpoint_source).
#include <functional>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/optim/adamw.hpp"
#include "loom/train/checkpoint.hpp"

namespace loom {

class GatheredCheckpointSource : public CheckpointSource {
 public:
  // Pieces of this rank: params and the optimizer's moments, laid out by local_layout. tp: its
  // tensor-parallel group; gather_stages(whole_p, t): completes t over the pipeline stages
  // (empty at pp 1). All must outlive this.
  GatheredCheckpointSource(comm::Communicator& tp, const std::vector<ParamInfo>& local_layout,
                           const float* params, const AdamW& optimizer,
                           std::function<void(const ParamInfo&, float*)> gather_stages)
      : tp_(tp),
        local_layout_(local_layout),
        params_(params),
        optimizer_(optimizer),
        gather_stages_(std::move(gather_stages)) {}

  const float* tensor(CheckpointTensor kind, const ParamInfo& whole_p, float* scratch) override;
  int64_t optimizer_step() const override { return optimizer_.step_count(); }

 private:
  comm::Communicator& tp_;
  const std::vector<ParamInfo>& local_layout_;
  const float* params_;
  const AdamW& optimizer_;
  std::function<void(const ParamInfo&, float*)> gather_stages_;
};

}  // namespace loom
