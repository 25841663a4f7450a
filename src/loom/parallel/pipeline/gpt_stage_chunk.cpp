#include "loom/parallel/pipeline/gpt_stage_chunk.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

namespace loom::pipeline {

GptStageChunk::GptStageChunk(GPT& model, int micro_batches, bool split_backward)
    : model_(model), m_(micro_batches), split_(split_backward) {
  LOOM_CHECK(m_ >= 1, "micro_batches must be >= 1, got ", m_);
  model_.set_split_backward(split_);
}

void GptStageChunk::set_batch(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                              float loss_scale) {
  LOOM_CHECK(batch % m_ == 0, "--micro_batches ", m_, " does not divide batch_size ", batch);
  LOOM_CHECK(in_flight_.empty(), "gpt stage: a new batch while micro-batches are still in flight");
  tokens_ = tokens;
  targets_ = targets;
  rows_ = batch / m_;
  seq_ = seq;
  loss_scale_ = loss_scale;
  loss_sum_ = 0;
}

size_t GptStageChunk::rows_elems() const { return static_cast<size_t>(rows_) * seq_; }

size_t GptStageChunk::input_size() const {
  return model_.shard().has_embedding ? 0 : rows_elems() * model_.config().d_model;
}

size_t GptStageChunk::output_size() const {
  return model_.shard().has_head ? 0 : rows_elems() * model_.config().d_model;
}

void GptStageChunk::forward(int mb, const float* input, float* output) {
  LOOM_CHECK(in_flight_.count(mb) == 0, "gpt stage: forward of micro-batch ", mb, " twice");
  GPT::ActivationsPtr set;
  if (pool_.empty()) {
    set = GPT::new_activations();
  } else {
    set = std::move(pool_.back());
    pool_.pop_back();
  }
  model_.swap_activations(*set);  // the model now works on the micro-batch's set
  const size_t off = static_cast<size_t>(mb) * rows_elems();
  const int32_t* targets = model_.shard().has_head ? targets_ + off : nullptr;
  const float loss =
      model_.shard().has_embedding
          ? model_.forward(tokens_ + off, targets, rows_, seq_, /*train=*/true)
          : model_.forward_activation(input, targets, rows_, seq_, /*train=*/true);
  if (model_.shard().has_head) {
    LOOM_CHECK(std::isfinite(loss), "the loss of micro-batch ", mb, " is ", loss,
               ": training diverged (try a lower lr)");
    loss_sum_ += loss;
  } else {
    std::copy(model_.output(), model_.output() + output_size(), output);
  }
  set_bytes_ = std::max(set_bytes_, model_.activation_bytes());
  model_.swap_activations(*set);  // parked until the micro-batch's backward
  in_flight_[mb] = std::move(set);
  peak_in_flight_ = std::max(peak_in_flight_, in_flight_.size());
}

void GptStageChunk::backward_input(int mb, const float* grad_output, float* grad_input) {
  const auto it = in_flight_.find(mb);
  LOOM_CHECK(it != in_flight_.end(), "gpt stage: backward of micro-batch ", mb, " without its forward");
  model_.swap_activations(*it->second);
  const float* dout = model_.shard().has_head ? nullptr : grad_output;
  if (split_)
    model_.backward_input(loss_scale_, dout);
  else if (dout == nullptr)
    model_.backward(loss_scale_);
  else
    model_.backward_from_output(dout);
  if (grad_input != nullptr)
    std::copy(model_.input_grad(), model_.input_grad() + input_size(), grad_input);
  model_.swap_activations(*it->second);
  if (!split_) {  // nothing left for W: the set is free
    pool_.push_back(std::move(it->second));
    in_flight_.erase(it);
  }
}

void GptStageChunk::backward_weights(int mb) {
  if (!split_) return;
  const auto it = in_flight_.find(mb);
  LOOM_CHECK(it != in_flight_.end(), "gpt stage: W of micro-batch ", mb, " without its B");
  model_.swap_activations(*it->second);
  model_.backward_weights();
  model_.swap_activations(*it->second);
  pool_.push_back(std::move(it->second));
  in_flight_.erase(it);
}

}  // namespace loom::pipeline
