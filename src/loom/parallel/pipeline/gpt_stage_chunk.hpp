#pragma once
// A GPT pipeline stage (a GPT model built for a ModelShard's blocks, with the embedding on the
// first stage and the head on the last) as the runtime's StageChunk. A step's batch (B rows of T
// tokens) is cut into micro-batches of B / m rows.
//
// The model keeps the activations of one forward. While several micro-batches are in flight
// (every schedule but a one-stage one), the chunk keeps each one's input (the previous stage's
// activation, or just its rows of tokens on the first stage) and, when a backward finds another
// micro-batch's activations in the model, runs that micro-batch's forward again first
// (activation recomputation: one more forward per such backward, far less memory than keeping
// every micro-batch's activations). The model's backward computes input and weight gradients
// together, so B runs the whole backward and W has nothing left to do: zb1p is correct here but
// gains nothing over 1f1b until the model's backward is split.
#include <cstdint>
#include <map>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/model/gpt.hpp"
#include "loom/parallel/pipeline/stage.hpp"

namespace loom::pipeline {

class GptStageChunk : public StageChunk {
 public:
  GptStageChunk(GPT& model, int micro_batches);

  // The step's batch (valid until the step ends): tokens and targets (batch, seq); each
  // micro-batch's gradient is scaled by loss_scale (1 / (micro_batches x grad_accum) for a mean).
  void set_batch(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                 float loss_scale);

  size_t input_size() const override;
  size_t output_size() const override;
  void forward(int mb, const float* input, float* output) override;
  void backward_input(int mb, const float* grad_output, float* grad_input) override;
  void backward_weights(int mb) override;

  // Sum of the micro-batches' mean losses since set_batch (last stage only).
  double loss_sum() const { return loss_sum_; }
  int64_t recomputed() const { return recomputed_; }  // forwards run again, in total
  size_t peak_input_bytes() const { return peak_inputs_ * input_size() * sizeof(float); }

 private:
  size_t rows_elems() const;  // micro-batch rows x seq
  void run_forward(int mb);

  GPT& model_;
  int m_;
  const int32_t* tokens_ = nullptr;
  const int32_t* targets_ = nullptr;
  int rows_ = 0, seq_ = 0;
  float loss_scale_ = 1;
  std::map<int, std::vector<float>> inputs_;  // per micro-batch in flight (stages after the first)
  int in_model_ = -1;  // the micro-batch whose activations the model holds
  double loss_sum_ = 0;
  float last_loss_ = 0;
  int64_t recomputed_ = 0;
  size_t peak_inputs_ = 0;  // most micro-batch inputs held at once
};

}  // namespace loom::pipeline
