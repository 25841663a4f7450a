#pragma once
// GPT-2 model: flat parameter/gradient buffers, explicit forward and backward.
// Templated on the scalar type so the whole model can be checked against finite differences in
// double precision; training uses GPT = GPTModel<float>.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/model/param_layout.hpp"

namespace loom {

struct KernelProfile;

template <typename T>
class GPTModel {
 public:
  explicit GPTModel(const GPTConfig& config);
  ~GPTModel();
  GPTModel(const GPTModel&) = delete;
  GPTModel& operator=(const GPTModel&) = delete;

  const GPTConfig& config() const;
  const std::vector<ParamInfo>& layout() const;
  size_t num_params() const;
  T* params();
  const T* params() const;
  T* grads();
  const T* grads() const;

  // GPT-2 initialisation from `seed`: weights N(0, 0.02), residual projections
  // (attn.c_proj.weight, mlp.c_proj.weight) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm gains 1.
  void init_weights(uint64_t seed);

  // tokens, targets: (B, T) int32 with B = batch, T = seq <= context_len; targets may be nullptr
  // (inference).
  // Activation buffers are allocated for the largest B*T seen and reused afterwards.
  // Dropout is applied only when train && config().dropout > 0, drawing from *dropout_rng.
  // Returns the mean cross-entropy over the B*T targets (0 when targets == nullptr).
  T forward(const int32_t* tokens, const int32_t* targets, int batch, int seq, bool train,
            Rng* dropout_rng = nullptr);
  // Logits (B, T, V) of the last forward (after backward(): their gradient, computed in place).
  const T* logits() const;

  // Backward of the last forward (which had targets), once: it turns logits() into the logits'
  // gradient in place. Adds loss_scale * d(mean loss)/d(param)
  // into grads() (accumulates: call zero_grad() between steps). After the gradient slice
  // grads()[begin, end) is final, calls on_ready(begin, end); slices come in backward order.
  using GradReadyFn = std::function<void(size_t begin, size_t end)>;
  void backward(T loss_scale = T(1), const GradReadyFn& on_ready = {});
  void zero_grad();

  // Attach a per-kernel timing profile (nullptr detaches); used by `loom bench train`.
  void set_profile(KernelProfile* profile);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

using GPT = GPTModel<float>;
extern template class GPTModel<float>;
extern template class GPTModel<double>;

}  // namespace loom
