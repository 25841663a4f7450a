#include "loom/parallel/pipeline/gpt_stage_chunk.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

namespace loom::pipeline {

GptStageChunk::GptStageChunk(GPT& model, int micro_batches) : model_(model), m_(micro_batches) {
  LOOM_CHECK(m_ >= 1, "micro_batches must be >= 1, got ", m_);
}

void GptStageChunk::set_batch(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                              float loss_scale) {
  LOOM_CHECK(batch % m_ == 0, "--micro_batches ", m_, " does not divide batch_size ", batch);
  LOOM_CHECK(inputs_.empty(), "gpt stage: a new batch while micro-batches are still in flight");
  tokens_ = tokens;
  targets_ = targets;
  rows_ = batch / m_;
  seq_ = seq;
  loss_scale_ = loss_scale;
  loss_sum_ = 0;
  in_model_ = -1;
}

size_t GptStageChunk::rows_elems() const { return static_cast<size_t>(rows_) * seq_; }

size_t GptStageChunk::input_size() const {
  return model_.shard().has_embedding ? 0 : rows_elems() * model_.config().d_model;
}

size_t GptStageChunk::output_size() const {
  return model_.shard().has_head ? 0 : rows_elems() * model_.config().d_model;
}

void GptStageChunk::run_forward(int mb) {
  const size_t off = static_cast<size_t>(mb) * rows_elems();
  const int32_t* targets = model_.shard().has_head ? targets_ + off : nullptr;
  float loss = 0;
  if (model_.shard().has_embedding)
    loss = model_.forward(tokens_ + off, targets, rows_, seq_, /*train=*/true);
  else
    loss = model_.forward_activation(inputs_.at(mb).data(), targets, rows_, seq_, /*train=*/true);
  in_model_ = mb;
  if (model_.shard().has_head) {
    LOOM_CHECK(std::isfinite(loss), "the loss of micro-batch ", mb, " is ", loss,
               ": training diverged (try a lower lr)");
    last_loss_ = loss;
  }
}

void GptStageChunk::forward(int mb, const float* input, float* output) {
  if (!model_.shard().has_embedding) inputs_[mb].assign(input, input + input_size());
  else inputs_[mb];  // marks the micro-batch in flight; its tokens are in the batch
  peak_inputs_ = std::max(peak_inputs_, inputs_.size());
  run_forward(mb);
  if (model_.shard().has_head) loss_sum_ += last_loss_;
  else std::copy(model_.output(), model_.output() + output_size(), output);
}

void GptStageChunk::backward_input(int mb, const float* grad_output, float* grad_input) {
  LOOM_CHECK(inputs_.count(mb) == 1, "gpt stage: backward of micro-batch ", mb, " without its forward");
  if (in_model_ != mb) {
    run_forward(mb);
    ++recomputed_;
  }
  if (model_.shard().has_head)
    model_.backward(loss_scale_);
  else
    model_.backward_from_output(grad_output);
  if (grad_input != nullptr)
    std::copy(model_.input_grad(), model_.input_grad() + input_size(), grad_input);
  in_model_ = -1;  // backward consumed the activations
  inputs_.erase(mb);
}

void GptStageChunk::backward_weights(int) {}

}  // namespace loom::pipeline
