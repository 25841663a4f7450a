#pragma once
// Training through the pipeline runtime, at every pp (pp 1 is the one-stage schedule), so the
// trainer's loop is the same for every layout:
//   - the stage's model shard: blocks from a balanced partition (costs timed once on world rank
//     0, the partition broadcast so every rank agrees; nothing to time at pp 1), embedding on
//     stage 0, head on the last; under an interleaved schedule with v virtual stages the model is
//     cut into pp x v parts and rank r holds parts r, pp + r, .. (Megatron's order) as the chunks
//     of one GPTModel, so the optimizer, checkpoints, dp/tp reductions and clipping see one
//     parameter buffer per rank;
//   - a step's forward and backward: the batch cut into micro-batches, run through the
//     schedule's action lists by the runtime over P2P lanes of the mesh's pp group; each chunk's
//     last backward of the step hands its finished gradient slices to the data-parallel hook
//     (GradientFrontier orders them), so the gradient reduction overlaps with backward at every pp;
//   - the tied wte: its gradient summed over the embedding group (first and last stage) after
//     the step's last backward, then handed to the hook; counted once in the global norm;
//   - evaluation and sampling: the forwards chained through the stages;
//   - sums of per-stage values (loss on the last stage, squared norms) over the pp group.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "loom/model/generate.hpp"
#include "loom/model/activation_set.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/recompute.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/pipeline/gpt_stage_chunk.hpp"
#include "loom/parallel/pipeline/p2p_lanes.hpp"
#include "loom/parallel/pipeline/partition.hpp"
#include "loom/parallel/pipeline/schedule.hpp"
#include "loom/parallel/zero_optimizer.hpp"

namespace loom::pipeline {

// Collective over the world: the blocks of every (virtual) stage, `stages` = pp x v of them,
// balanced with the costs of one sequence of `seq` tokens timed on world rank 0 (with `threads`
// threads), or `blocks` per stage when given (--partition); every rank gets the costs.
Partition stage_partition(comm::Communicator& world, const GPTConfig& model, int pp, int seq,
                          int threads, const std::vector<int>& blocks = {});

// The ModelShard of mesh position (pp rank, tp rank) for a partition of pp x virtual_stages
// parts: chunk c holds part c x pp + pp_rank.
ModelShard stage_shard(const Partition& p, int pp_rank, int tp_rank, int tp_size,
                       int virtual_stages = 1);

class PipelineTraining {
 public:
  // Collective over the pp group (makes its lanes). `model` is this rank's stage, with
  // `virtual_stages` chunks (interleaved schedules) or one, run with activation recomputation
  // `recompute`.
  PipelineTraining(parallel::Mesh& mesh, GPT& model, ScheduleKind kind, int micro_batches,
                   int virtual_stages, Recompute recompute);

  // Forward and backward of one batch (batch x seq on every stage of the pipeline) through the
  // schedule; gradients accumulate (scaled by grad_scale / micro_batches). Dropout draws one key
  // from dropout_rng, as one forward of the whole batch would (every stage must pass the same
  // state). on_ready (may be empty) hears of every gradient slice the batch's backward finishes,
  // from the buffer's end to its start (GPT::GradReadyFn's contract), the tied wte last.
  // step_end: the step's last batch (of its grad_accum): afterwards wte's gradient is summed over
  // the embedding group. Returns the mean loss over the micro-batches on the last stage, 0 on the
  // others.
  double forward_backward(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                          float grad_scale, Rng& dropout_rng, const GPT::GradReadyFn& on_ready = {},
                          bool step_end = true);
  // Mean loss of (batch x seq) through the chained stages (no gradients); on the last stage,
  // 0 on the others. targets may be nullptr: the last stage then only computes the logits.
  double forward_only(const int32_t* tokens, const int32_t* targets, int batch, int seq);
  // Collective over the pp group (and the tp group): generate() through the chained stages.
  // The last stage samples each token (with its rng) and sends it to the others; every stage
  // returns the same tokens.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, int max_new_tokens,
                                const SampleOptions& opts, Rng& rng);
  // The flat range of this stage's gradient its norm leaves out: the tied wte on the last stage
  // (the first stage counts it); empty elsewhere. Summing the stages' norms without it over the
  // pp group (sum_over_stages) gives the squared norm of the whole model's gradient.
  parallel::FlatRange norm_skip() const;
  double sum_over_stages(double x);  // x itself at pp 1
  // Mixture-of-experts models: the MoE stats of the last forward_backward's forwards on this
  // stage, means over its micro-batches (summed over its chunks); zeros for a dense model.
  moe::MoeStats moe_stats() const;
  // Collective over the pp group: `whole` (whole tensor whole_p: this stage's, or zeros where the
  // stage does not hold it) becomes the model's on every stage; the tied wte comes from stage 0.
  void gather_stage_tensor(const ParamInfo& whole_p, float* whole);

  const Schedule& schedule() const { return schedule_; }
  // Seconds this stage spent computing (F, B, W; not waiting) in all forward_backward calls.
  double compute_seconds() const { return compute_s_; }

 private:
  // After the last backward of a step: wte's gradient summed over the embedding group.
  void reduce_tied_embedding();
  // The range of the gradient the data-parallel hook gets only after reduce_tied_embedding().
  parallel::FlatRange tied_range() const;

  parallel::Mesh& mesh_;
  GPT& model_;
  Schedule schedule_;
  P2PLanes lanes_;
  ActivationWorkspace<float> workspace_;  // the backward's scratch, shared by the chunks
  std::vector<std::unique_ptr<GptStageChunk>> chunks_;  // the model's chunks, in order
  // Evaluation's and sampling's activations, for every chunk in turn (its buffers grow to the
  // largest chunk's); the last chunk's logits stay there for sampling.
  ActivationSet<float> eval_set_;
  const ParamInfo* wte_ = nullptr;  // in this stage's layout, when it holds wte
  double compute_s_ = 0;
};

}  // namespace loom::pipeline
