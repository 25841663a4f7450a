#pragma once
// One chunk of a GPT pipeline stage (a GPT model built for a ModelShard's blocks, with the
// embedding on the first stage and the head on the last) as the runtime's StageChunk: a
// ChunkExecutor over the chunk's blocks. Under an interleaved schedule the stage's model holds
// several chunks (ModelShard::chunks) and each gets its own GptStageChunk; the stage's chunks
// share one ActivationWorkspace (the backward's scratch). A step's batch (B rows of T tokens) is
// cut into micro-batches of B / m rows.
//
// Every micro-batch in flight keeps its activations in its own ActivationSet, taken from a pool
// when its forward starts and returned when its backward is done: the chunk holds exactly as many
// sets as the schedule has micro-batches in flight (m for GPipe, at most P - stage for 1F1B).
// With split_backward (zero-bubble schedules) B and W are the executor's backward_input and
// backward_weights, and a micro-batch's set is held until its W, but from its B on without its
// B-only buffers (logits, attention probabilities: the executor pools them for the next
// forward); otherwise B is the executor's whole backward and W has nothing left to do.
//
// The step's last backward of the chunk (its m-th B, or its m-th W under split_backward) reports
// the gradient slices it finishes to the step's on_ready hook (data-parallel buckets overlap with
// it): the executor's own slices (a block at a time) during a whole backward; every tensor of the
// chunk after the last W (the executor's W reports nothing).
#include <cstdint>
#include <map>
#include <vector>

#include "loom/model/activation_set.hpp"
#include "loom/model/chunk_executor.hpp"
#include "loom/model/gpt.hpp"
#include "loom/parallel/zero_optimizer.hpp"
#include "loom/parallel/pipeline/stage.hpp"

namespace loom::pipeline {

class GptStageChunk : public StageChunk {
 public:
  // `workspace`: the stage's, shared by its chunks; `model` and `workspace` must outlive the
  // chunk. options: which of the model's chunks this is, its recompute mode and split backward.
  GptStageChunk(GPT& model, ActivationWorkspace<float>& workspace, int micro_batches,
                const ExecutorOptions& options);

  // The step's batch (valid until the step ends): tokens and targets (batch, seq); each
  // micro-batch's gradient is scaled by loss_scale (1 / (micro_batches x grad_accum) for a mean).
  // Every micro-batch's forward draws its dropout key from a copy of `dropout` and passes its
  // first row as the first sample, so the masks are those of the whole batch in one forward.
  // on_ready: called with the slices the chunk's last backward of the batch finishes (may be
  // empty).
  void set_batch(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                 float loss_scale, const Rng& dropout = Rng(), GPT::GradReadyFn on_ready = {});

  size_t input_size() const override;
  size_t output_size() const override;
  void forward(int mb, const float* input, float* output) override;
  void backward_input(int mb, const float* grad_output, float* grad_input) override;
  void backward_weights(int mb) override;

  // Sum of the micro-batches' mean losses since set_batch (last stage only).
  double loss_sum() const { return loss_sum_; }
  // Mixture-of-experts models: the sum of the micro-batches' MoE stats since set_batch.
  const moe::MoeStats& moe_sum() const { return moe_sum_; }
  // Most activation sets held at once.
  size_t peak_in_flight() const { return peak_in_flight_; }
  // Bytes of the sets this chunk holds (in flight or free for the next forward) and of its
  // executor's pool: with the workspace's bytes, the stage's activation memory. Sets are never
  // freed and buffers only grow, so after a step this is the step's peak.
  size_t held_bytes() const;
  // The chunk's executor (evaluation and sampling run its forward on a set of their own).
  GptExecutor& executor() { return executor_; }

 private:
  size_t rows_elems() const;  // micro-batch rows x seq

  GPT& model_;
  GptExecutor executor_;
  int m_;
  const int32_t* tokens_ = nullptr;
  const int32_t* targets_ = nullptr;
  int rows_ = 0, seq_ = 0;
  float loss_scale_ = 1;
  Rng dropout_;
  GPT::GradReadyFn on_ready_;
  int backwards_done_ = 0;  // this batch's B (whole backwards) or, under split_backward, W
  std::vector<parallel::FlatRange> tensors_;  // the chunk's gradient tensors, from the end
  std::map<int, ActivationSet<float>> in_flight_;  // by micro-batch, from F until W
  std::vector<ActivationSet<float>> pool_;         // sets free for the next forward
  double loss_sum_ = 0;
  moe::MoeStats moe_sum_;
  size_t peak_in_flight_ = 0;
};

}  // namespace loom::pipeline
