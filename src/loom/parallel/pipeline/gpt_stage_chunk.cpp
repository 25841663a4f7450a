#include "loom/parallel/pipeline/gpt_stage_chunk.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "loom/core/check.hpp"
#include "loom/core/trace.hpp"
#include "loom/parallel/pipeline/backward_trace.hpp"

namespace loom::pipeline {
namespace {

// The flat ranges of the gradient tensors chunk `chunk` of `model` writes, from the buffer's end:
// its blocks, the embedding (wte, wpe) on chunk 0, ln_f on the last chunk.
std::vector<parallel::FlatRange> chunk_tensors(const GPT& model, int chunk) {
  const BlockRange blocks = model.shard().block_chunks(model.config()).at(chunk);
  const bool last = chunk + 1 == model.shard().num_chunks();
  const std::string block_prefix = "transformer.h.";
  std::vector<parallel::FlatRange> out;
  for (const ParamInfo& p : model.layout()) {
    bool mine = false;
    if (p.name.rfind(block_prefix, 0) == 0) {
      const int l = std::stoi(p.name.substr(block_prefix.size()));
      mine = l >= blocks.first && l < blocks.last;
    } else if (p.name.rfind("transformer.ln_f.", 0) == 0) {
      mine = last;
    } else {  // wte, wpe
      mine = chunk == 0;
    }
    if (mine) out.push_back({p.offset, p.offset + p.numel});
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

GptStageChunk::GptStageChunk(GPT& model, ActivationWorkspace<float>& workspace, int micro_batches,
                             const ExecutorOptions& options)
    : model_(model), executor_(model, workspace, options), m_(micro_batches) {
  LOOM_CHECK(m_ >= 1, "micro_batches must be >= 1, got ", m_);
  tensors_ = chunk_tensors(model, options.chunk);
}

void GptStageChunk::set_batch(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                              float loss_scale, const Rng& dropout, GPT::GradReadyFn on_ready) {
  LOOM_CHECK(batch % m_ == 0, "--micro_batches ", m_, " does not divide batch_size ", batch);
  LOOM_CHECK(in_flight_.empty(), "gpt stage: a new batch while micro-batches are still in flight");
  tokens_ = tokens;
  targets_ = targets;
  rows_ = batch / m_;
  seq_ = seq;
  loss_scale_ = loss_scale;
  dropout_ = dropout;
  on_ready_ = std::move(on_ready);
  backwards_done_ = 0;
  loss_sum_ = 0;
  moe_sum_ = {};
}

size_t GptStageChunk::rows_elems() const { return static_cast<size_t>(rows_) * seq_; }

size_t GptStageChunk::input_size() const {
  return executor_.has_embedding() ? 0 : rows_elems() * model_.config().d_model;
}

size_t GptStageChunk::output_size() const {
  return executor_.has_head() ? 0 : rows_elems() * model_.config().d_model;
}

void GptStageChunk::forward(int mb, const float* input, float* output) {
  LOOM_CHECK(in_flight_.count(mb) == 0, "gpt stage: forward of micro-batch ", mb, " twice");
  trace::Scope event("forward", "compute");
  ActivationSet<float> set = pool_.empty() ? ActivationSet<float>() : std::move(pool_.back());
  if (!pool_.empty()) pool_.pop_back();
  const bool heads = executor_.has_head();
  const size_t off = static_cast<size_t>(mb) * rows_elems();
  const int32_t* targets = heads ? targets_ + off : nullptr;
  Rng rng = dropout_;
  const int64_t first_sample = static_cast<int64_t>(mb) * rows_;
  const float loss =
      executor_.has_embedding()
          ? executor_.forward(set, tokens_ + off, targets, rows_, seq_, /*train=*/true, &rng,
                              first_sample)
          : executor_.forward_activation(set, input, targets, rows_, seq_, /*train=*/true, &rng,
                                         first_sample);
  // A non-finite loss is not thrown here: the trainer's peers would wait for this rank in their
  // next collective. The loss sum carries it to the trainer, where every rank sees it.
  moe_sum_ += executor_.moe_stats(set);  // zeros for a dense model
  if (heads) {
    loss_sum_ += loss;
  } else {
    const float* out = executor_.output(set);
    std::copy(out, out + output_size(), output);
  }
  in_flight_.emplace(mb, std::move(set));  // parked until the micro-batch's backward
  peak_in_flight_ = std::max(peak_in_flight_, in_flight_.size());
}

void GptStageChunk::backward_input(int mb, const float* grad_output, float* grad_input) {
  const auto it = in_flight_.find(mb);
  LOOM_CHECK(it != in_flight_.end(), "gpt stage: backward of micro-batch ", mb, " without its forward");
  trace::Scope event("backward", "compute");
  ActivationSet<float>& set = it->second;
  const float* dout = executor_.has_head() ? nullptr : grad_output;
  const bool split = executor_.options().split_backward;
  if (split) {
    executor_.backward_input(set, loss_scale_, dout);
  } else {
    // The batch's last backward of the chunk finishes its gradients: the hook hears of them.
    const bool last = ++backwards_done_ == m_;
    const GPT::GradReadyFn on_ready =
        traced_backward_hook(last ? on_ready_ : GPT::GradReadyFn(), model_.layout());
    if (dout == nullptr)
      executor_.backward(set, loss_scale_, on_ready);
    else
      executor_.backward_from_output(set, dout, on_ready);
  }
  if (grad_input != nullptr) {
    const float* gi = executor_.input_grad(set);
    std::copy(gi, gi + input_size(), grad_input);
  }
  if (!split) {  // nothing left for W: the set is free
    pool_.push_back(std::move(set));
    in_flight_.erase(it);
  }
}

void GptStageChunk::backward_weights(int mb) {
  if (!executor_.options().split_backward) return;
  const auto it = in_flight_.find(mb);
  LOOM_CHECK(it != in_flight_.end(), "gpt stage: W of micro-batch ", mb, " without its B");
  trace::Scope event("backward", "compute");
  executor_.backward_weights(it->second);
  pool_.push_back(std::move(it->second));
  in_flight_.erase(it);
  if (++backwards_done_ == m_ && on_ready_)  // the batch's last W: the chunk's gradients are final
    for (const parallel::FlatRange& t : tensors_) on_ready_(t.begin, t.end);
}

size_t GptStageChunk::held_bytes() const {
  size_t n = executor_.pooled_bytes();
  for (const auto& [mb, set] : in_flight_) n += set.bytes();
  for (const auto& set : pool_) n += set.bytes();
  return n;
}

}  // namespace loom::pipeline
