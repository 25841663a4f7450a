#pragma once
// What training does differently under pipeline parallelism (pp > 1), in one place, so the
// trainer's loop stays the same for every layout:
//   - the stage's model shard: blocks from a balanced partition (costs timed once on world rank
//     0, the partition broadcast so every rank agrees), embedding on stage 0, head on the last;
//   - a step's forward and backward: the batch cut into micro-batches, run through the
//     schedule's action lists by the runtime over P2P lanes of the mesh's pp group;
//   - the tied wte: its gradient summed over the embedding group (first and last stage), and
//     counted once in the global gradient norm;
//   - evaluation: the micro-batches' forwards chained through the stages;
//   - sums of per-stage values (loss on the last stage, squared norms) over the pp group.
#include <functional>
#include <memory>
#include <string>

#include "loom/model/gpt.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/pipeline/gpt_stage_chunk.hpp"
#include "loom/parallel/pipeline/p2p_lanes.hpp"
#include "loom/parallel/pipeline/partition.hpp"
#include "loom/parallel/pipeline/schedule.hpp"

namespace loom::pipeline {

// Collective over the world: the blocks of every stage, balanced with the costs of one
// sequence of `seq` tokens timed on world rank 0 (with `threads` threads), or `blocks` per stage
// when given (--partition); every rank gets the costs.
Partition stage_partition(comm::Communicator& world, const GPTConfig& model, int pp, int seq,
                          int threads, const std::vector<int>& blocks = {});

// The ModelShard of mesh position (pp rank, tp rank) for a partition.
ModelShard stage_shard(const Partition& p, int pp_rank, int tp_rank, int tp_size);

class PipelineTraining {
 public:
  // Collective over the pp group (makes its lanes). `model` is this rank's stage.
  PipelineTraining(parallel::Mesh& mesh, GPT& model, ScheduleKind kind, int micro_batches);

  // Forward and backward of one batch (batch x seq on every stage of the pipeline) through the
  // schedule; gradients accumulate (scaled by grad_scale / micro_batches). Returns the mean loss
  // over the micro-batches on the last stage, 0 on the others.
  double forward_backward(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                          float grad_scale);
  // Mean loss of (batch x seq) through the chained stages (no gradients); on the last stage,
  // 0 on the others.
  double forward_only(const int32_t* tokens, const int32_t* targets, int batch, int seq);
  // After the last backward of a step: wte's gradient summed over the embedding group.
  void reduce_tied_embedding();
  // Runs sq_sum() with the tied wte's gradient hidden on the last stage (the first stage
  // counts it), then sums over the pp group: the squared norm of the whole model's gradient.
  double global_grad_sq_sum(const std::function<double()>& sq_sum);
  double sum_over_stages(double x);
  // Collective over the pp group: `whole` (whole_layout, holding this stage's tensors and zeros
  // elsewhere) becomes the whole model's on every stage; the tied wte comes from stage 0.
  void gather_stages(const std::vector<ParamInfo>& whole_layout, float* whole);

  const Schedule& schedule() const { return schedule_; }
  // Seconds this stage spent computing (F, B, W; not waiting) in all forward_backward calls.
  double compute_seconds() const { return compute_s_; }

 private:
  parallel::Mesh& mesh_;
  GPT& model_;
  Schedule schedule_;
  P2PLanes lanes_;
  GptStageChunk chunk_;
  const ParamInfo* wte_ = nullptr;  // in this stage's layout, when it holds wte
  double compute_s_ = 0;
};

}  // namespace loom::pipeline
