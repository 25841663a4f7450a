#include "loom/parallel/pipeline/gpt_stage_chunk.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

namespace loom::pipeline {

GptStageChunk::GptStageChunk(GPT& model, int micro_batches, bool split_backward, int chunk)
    : model_(model),
      m_(micro_batches),
      split_(split_backward),
      chunk_(chunk),
      embeds_(chunk == 0 && model.shard().has_embedding),
      heads_(chunk == model.shard().num_chunks() - 1 && model.shard().has_head) {
  LOOM_CHECK(m_ >= 1, "micro_batches must be >= 1, got ", m_);
  LOOM_CHECK(chunk >= 0 && chunk < model.shard().num_chunks(), "gpt stage: chunk ", chunk,
             " of a model with ", model.shard().num_chunks(), " chunks");
  model_.set_split_backward(split_);
}

void GptStageChunk::set_batch(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                              float loss_scale, const Rng& dropout) {
  LOOM_CHECK(batch % m_ == 0, "--micro_batches ", m_, " does not divide batch_size ", batch);
  LOOM_CHECK(in_flight_.empty(), "gpt stage: a new batch while micro-batches are still in flight");
  tokens_ = tokens;
  targets_ = targets;
  rows_ = batch / m_;
  seq_ = seq;
  loss_scale_ = loss_scale;
  dropout_ = dropout;
  loss_sum_ = 0;
}

size_t GptStageChunk::rows_elems() const { return static_cast<size_t>(rows_) * seq_; }

size_t GptStageChunk::input_size() const {
  return embeds_ ? 0 : rows_elems() * model_.config().d_model;
}

size_t GptStageChunk::output_size() const {
  return heads_ ? 0 : rows_elems() * model_.config().d_model;
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
  model_.set_chunk(chunk_);
  model_.swap_activations(*set);  // the model now works on the micro-batch's set
  const size_t off = static_cast<size_t>(mb) * rows_elems();
  const int32_t* targets = heads_ ? targets_ + off : nullptr;
  Rng rng = dropout_;
  const int64_t first_sample = static_cast<int64_t>(mb) * rows_;
  const float loss =
      embeds_ ? model_.forward(tokens_ + off, targets, rows_, seq_, /*train=*/true, &rng, first_sample)
              : model_.forward_activation(input, targets, rows_, seq_, /*train=*/true, &rng,
                                          first_sample);
  if (heads_) {
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
  model_.set_chunk(chunk_);
  model_.swap_activations(*it->second);
  const float* dout = heads_ ? nullptr : grad_output;
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
  model_.set_chunk(chunk_);
  model_.swap_activations(*it->second);
  model_.backward_weights();
  model_.swap_activations(*it->second);
  pool_.push_back(std::move(it->second));
  in_flight_.erase(it);
}

}  // namespace loom::pipeline
