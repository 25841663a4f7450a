#pragma once
// ModelRunner: one chunk of a model (the whole shard at pp 1) run one batch at a time — its
// executor with a workspace and one activation set of its own. For callers that keep no
// micro-batches in flight: evaluation, sampling, benchmarks, a parameter-server worker, the
// gradient checks. A pipeline stage uses executors and sets directly (gpt_stage_chunk).
#include <cstddef>
#include <cstdint>

#include "loom/model/activation_set.hpp"
#include "loom/model/chunk_executor.hpp"

namespace loom {

template <typename T>
class ModelRunner {
 public:
  using GradReadyFn = typename GPTModel<T>::GradReadyFn;

  // `model` must outlive the runner.
  explicit ModelRunner(GPTModel<T>& model, const ExecutorOptions& options = {})
      : executor_(model, workspace_, options) {}

  // ChunkExecutor's calls on the runner's set.
  T forward(const int32_t* tokens, const int32_t* targets, int batch, int seq, bool train,
            Rng* dropout_rng = nullptr, int64_t first_sample = 0) {
    return executor_.forward(set_, tokens, targets, batch, seq, train, dropout_rng, first_sample);
  }
  T forward_activation(const T* input, const int32_t* targets, int batch, int seq, bool train,
                       Rng* dropout_rng = nullptr, int64_t first_sample = 0) {
    return executor_.forward_activation(set_, input, targets, batch, seq, train, dropout_rng,
                                        first_sample);
  }
  void backward(T loss_scale = T(1), const GradReadyFn& on_ready = {}) {
    executor_.backward(set_, loss_scale, on_ready);
  }
  void backward_from_output(const T* doutput, const GradReadyFn& on_ready = {}) {
    executor_.backward_from_output(set_, doutput, on_ready);
  }
  void backward_input(T loss_scale, const T* doutput) {
    executor_.backward_input(set_, loss_scale, doutput);
  }
  void backward_weights() { executor_.backward_weights(set_); }
  moe::MoeStats moe_stats() const { return executor_.moe_stats(set_); }
  const T* output() const { return executor_.output(set_); }
  const T* logits() const { return executor_.logits(set_); }
  void logits_row(int n, T* out) const { executor_.logits_row(set_, n, out); }
  const T* input_grad() const { return executor_.input_grad(set_); }

  // Bytes of activation memory, as planned for the largest batch seen: the set's own
  // (ActivationSet::bytes), and the shared ones — the backward's scratch and the pooled B-only
  // buffers no set holds. activation_bytes() is their sum: everything the runner uses.
  size_t set_bytes() const { return set_.bytes(); }
  size_t shared_activation_bytes() const { return workspace_.bytes() + executor_.pooled_bytes(); }
  size_t activation_bytes() const { return set_bytes() + shared_activation_bytes(); }
  size_t logits_bytes() const { return set_.logits_bytes(); }
  // Activation buffers allocated so far (ActivationWorkspace::allocations).
  size_t activation_allocations() const { return workspace_.allocations(); }

  ChunkExecutor<T>& executor() { return executor_; }

 private:
  ActivationWorkspace<T> workspace_;  // before executor_, which refers to it
  ChunkExecutor<T> executor_;
  ActivationSet<T> set_;
};

}  // namespace loom
