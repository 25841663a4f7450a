#pragma once
// GPT-2 model: flat parameter/gradient buffers, explicit forward and backward.
// Templated on the scalar type so the whole model can be checked against finite differences in
// double precision; training uses GPT = GPTModel<float>.
//
// One class serves every layout: a model holds a ModelShard — a pipeline stage (blocks
// [first_block, last_block), with the embedding on the first stage and ln_f + LM head + loss on
// the last) cut for tensor parallelism (Megatron-LM: c_attn and mlp.c_fc column-parallel,
// attn.c_proj and mlp.c_proj row-parallel, vocab-parallel wte / LM head / cross-entropy). The
// whole model on one rank is the default shard, run through the same code. Tensor parallelism
// communicates only through a TensorParallelGroup: one all-reduce per block half in forward
// (after each row-parallel projection) and the conjugate one in backward (of the gradient
// entering each column-parallel projection's input LayerNorm), plus the embedding's all-reduce,
// the LM head's input-gradient all-reduce and the cross-entropy's max and sum-exp.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/model/model_shard.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/model/recompute.hpp"
#include "loom/model/tp_group.hpp"

namespace loom {

struct KernelProfile;

template <typename T>
class GPTModel {
 public:
  // `tp`: the shard's tensor-parallel group (its size and rank must be shard's tp_size and
  // tp_rank; it must outlive the model); nullptr when tp_size is 1.
  explicit GPTModel(const GPTConfig& config, const ModelShard& shard = {},
                    TensorParallelGroup* tp = nullptr);
  ~GPTModel();
  GPTModel(const GPTModel&) = delete;
  GPTModel& operator=(const GPTModel&) = delete;

  const GPTConfig& config() const;
  const ModelShard& shard() const;
  const std::vector<ParamInfo>& layout() const;
  size_t num_params() const;
  T* params();
  const T* params() const;
  // The flat gradient buffer, laid out like params(); nullptr after bind_gradients.
  T* grads();
  const T* grads() const;
  // Moves the gradients out of the model: tensor layout()[i] (numel elements) lives at
  // storage[i] from now on, in memory the caller owns and keeps alive, and the flat buffer is
  // freed (nothing is allocated). Backward adds into the bound tensors as it added into
  // grads(), on_ready reports the same flat ranges of layout(), and zero_grad() zeroes every
  // bound tensor. Tensors may share memory if their gradients are never live at once: ZeRO-2
  // (parallel/sharded_gradients) reuses a few bucket buffers and reduce-scatters each bucket
  // as backward finishes it. Called before training; without it the model is unchanged.
  void bind_gradients(const std::vector<T*>& storage);

  // GPT-2 initialisation from `seed`: weights N(0, 0.02), residual projections
  // (attn.c_proj.weight, mlp.c_proj.weight) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm gains 1.
  // Every shard draws the whole model's values and keeps its piece, so any layout starts from
  // the same model.
  void init_weights(uint64_t seed);

  // Forward of a stage with the embedding. tokens, targets: (B, T) int32 with B = batch,
  // T = seq <= context_len; targets may be nullptr (inference; ignored without the head).
  // Activation buffers are allocated for the largest B*T seen and reused afterwards.
  // Dropout is applied only when train && config().dropout > 0: the forward draws one key from
  // *dropout_rng, and the mask of each (sample, layer, site, head) is a pure function of the key,
  // the sample's index (first_sample + row of the batch), the layer, the site and the global
  // head. So a batch cut into pipeline micro-batches (each forward given a copy of the same Rng
  // and its first sample), spread over pipeline stages or tensor-parallel ranks, draws the masks
  // of the whole batch on one rank.
  // Returns the mean cross-entropy over the B*T targets (0 without targets or without the head).
  // Collective over the tp group.
  T forward(const int32_t* tokens, const int32_t* targets, int batch, int seq, bool train,
            Rng* dropout_rng = nullptr, int64_t first_sample = 0);
  // Forward of a stage without the embedding: `input` (B, T, C) is the previous stage's
  // output() (copied). Otherwise as forward().
  T forward_activation(const T* input, const int32_t* targets, int batch, int seq, bool train,
                       Rng* dropout_rng = nullptr, int64_t first_sample = 0);
  // (B, T, C): the residual stream after the stage's last block, for the next stage.
  const T* output() const;
  // This rank's logits (B, T, local_vocab()) of the last forward (a stage with the head): the
  // whole vocabulary at tp 1, its vocab-parallel columns otherwise (after backward(): their
  // gradient, computed in place).
  const T* logits() const;
  int local_vocab() const;
  // Collective over the tp group: out[0, vocab_size) = the whole-vocabulary logits of row n
  // of the last forward.
  void logits_row(int n, T* out) const;

  // Backward of the last forward (which had targets) of a stage with the head, once: it turns
  // logits() into the logits' gradient in place. Adds loss_scale * d(mean loss)/d(param)
  // into grads() (accumulates: call zero_grad() between steps; or the bound storage). After the gradient slice
  // grads()[begin, end) is final, calls on_ready(begin, end); slices come in backward order,
  // from the end of the buffer to its start. Collective over the tp group.
  using GradReadyFn = std::function<void(size_t begin, size_t end)>;
  void backward(T loss_scale = T(1), const GradReadyFn& on_ready = {});
  // Backward of a stage without the head: `doutput` (B, T, C) is the gradient of output().
  void backward_from_output(const T* doutput, const GradReadyFn& on_ready = {});
  // The backward split in two, for zero-bubble pipeline schedules (after
  // set_split_backward(true) and a forward): backward_input (B) computes the gradient of the
  // stage's input (input_grad()) and of the LayerNorms, and keeps the linear layers' output
  // gradients (more activation memory); backward_weights (W) then adds every other weight
  // gradient. B then W adds exactly what backward() / backward_from_output() add. doutput: the
  // output's gradient on a stage without the head, nullptr on the last stage (which starts
  // from its loss, scaled by loss_scale).
  void set_split_backward(bool split);
  void backward_input(T loss_scale, const T* doutput);
  void backward_weights();
  // (B, T, C): after the backward of a stage without the embedding, the gradient of its input.
  const T* input_grad() const;
  void zero_grad();

  // Activation recomputation for the following forwards (the buffers are re-planned for the
  // mode): gradients are bit-identical to kNone, dropout masks are kept and reused. kFull keeps
  // only each block's input (and its dropout masks) and recomputes the block in backward, the tp
  // all-reduce of its attention branch included (every tp rank recomputes, in the same order).
  // kFull cannot be combined with the split backward: W needs every block's layer inputs.
  void set_recompute(Recompute mode);
  Recompute recompute() const;

  // A shard of several chunks (ModelShard::chunks, interleaved pipeline schedules): the following
  // forwards and backwards run chunk c alone: its blocks, the embedding if c is 0 (and the shard
  // has it), the head if c is the last (and the shard has it). Activation sets are planned for
  // one chunk: each chunk should have its own (a set used for another chunk is re-planned).
  // output() and input_grad() are the chunk's. Default: chunk 0.
  void set_chunk(int c);
  int chunk() const;

  // Bytes of the activation buffers (everything kept between forward and backward plus the
  // backward's scratch), and of the logits among them, as planned for the largest batch seen.
  size_t activation_bytes() const;
  size_t logits_bytes() const;

  // Activation sets, for pipeline parallelism: forward and backward work on the model's current
  // set, and swap_activations exchanges it with another (nothing is copied), so a stage with
  // several micro-batches in flight keeps each one's activations in its own set. A new set is
  // empty; the first forward run on it allocates its buffers.
  struct Activations;
  struct ActivationsDeleter {
    void operator()(Activations* a) const;
  };
  using ActivationsPtr = std::unique_ptr<Activations, ActivationsDeleter>;
  static ActivationsPtr new_activations();
  void swap_activations(Activations& other);

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
