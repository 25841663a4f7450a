#pragma once
// ChunkExecutor: runs one chunk of a GPT model shard — a range of its blocks, with the embedding
// when the chunk is the shard's first and has it, with ln_f + LM head + loss when it is its last
// and has it — forward and backward on activation sets the caller owns. A pipeline stage's chunk
// is one executor; the whole model at pp 1 is the executor of its only chunk. The recompute mode
// and the split backward are fixed when the executor is built.
//
// Activation memory: each set is planned by activation_plan for the forward run on it (its
// buffers grow to the largest batch seen and are reused). The backward's scratch is the
// workspace's, shared by every executor given it (valid until the next forward or backward of
// any of them). Under a split backward B returns a set's B-only buffers (logits, attention
// probabilities, statistics, masks) to the executor's pool, from which the next forward takes
// them: a set waiting for W holds only its blocks' linear layers' inputs and output gradients.
//
// Tensor parallelism communicates only through the model's TensorParallelGroup: one all-reduce
// per block half in forward (after each row-parallel projection) and the conjugate one in
// backward (of the gradient entering each column-parallel projection's input LayerNorm), plus the
// embedding's all-reduce, the LM head's input-gradient all-reduce and the cross-entropy's max and
// sum-exp. Every call that runs the model is collective over the tp group.
//
// Per-block hook: the gradient-ready callback (GradReadyFn) is called after each block's backward
// with the block's slice of the gradients (and after the head's and the embedding's).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "loom/core/rng.hpp"
#include "loom/model/activation_set.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/moe/moe_layer.hpp"
#include "loom/model/recompute.hpp"

namespace loom {

struct KernelProfile;

// How an executor runs its chunk.
struct ExecutorOptions {
  int chunk = 0;  // which of the shard's chunks (ModelShard::chunks; 0 unless it has several)
  // Activation recomputation: gradients are bit-identical to kNone, dropout masks are kept and
  // reused. kFull keeps only each block's input (and its dropout masks) and recomputes the block
  // in backward, the tp all-reduce of its attention branch included.
  Recompute recompute = Recompute::kNone;
  // The backward in two calls, for zero-bubble pipeline schedules: backward_input (B) then
  // backward_weights (W). Cannot be combined with kFull (W needs every block's layer inputs).
  bool split_backward = false;
};

template <typename T>
class ChunkExecutor {
 public:
  using GradReadyFn = typename GPTModel<T>::GradReadyFn;

  // `model` and `workspace` must outlive the executor.
  ChunkExecutor(GPTModel<T>& model, ActivationWorkspace<T>& workspace,
                const ExecutorOptions& options = {});
  ~ChunkExecutor();
  ChunkExecutor(ChunkExecutor&&) noexcept;
  ChunkExecutor(const ChunkExecutor&) = delete;
  ChunkExecutor& operator=(const ChunkExecutor&) = delete;

  const ExecutorOptions& options() const;
  bool has_embedding() const;
  bool has_head() const;

  // Forward of a chunk with the embedding into `set`. tokens, targets: (B, T) int32 with
  // B = batch, T = seq <= context_len; targets may be nullptr (inference; ignored without the
  // head). Dropout is applied only when train && config().dropout > 0: the forward draws one key
  // from *dropout_rng, and the mask of each (sample, layer, site, head) is a pure function of the
  // key, the sample's index (first_sample + row of the batch), the layer, the site and the global
  // head. So a batch cut into pipeline micro-batches (each forward given a copy of the same Rng
  // and its first sample), spread over pipeline stages or tensor-parallel ranks, draws the masks
  // of the whole batch on one rank.
  // Returns the mean cross-entropy over the B*T targets (0 without targets or without the head).
  T forward(ActivationSet<T>& set, const int32_t* tokens, const int32_t* targets, int batch,
            int seq, bool train, Rng* dropout_rng = nullptr, int64_t first_sample = 0);
  // Forward of a chunk without the embedding: `input` (B, T, C) is the previous chunk's output
  // (copied into the set). Otherwise as forward().
  T forward_activation(ActivationSet<T>& set, const T* input, const int32_t* targets, int batch,
                       int seq, bool train, Rng* dropout_rng = nullptr, int64_t first_sample = 0);
  // The MoE blocks of the set's forward (zeros for a chunk without any): their auxiliary losses
  // summed (each times its coefficient: the training loss is the forward's cross-entropy plus
  // these two, and backward adds their gradients, scaled by loss_scale), the dropped share
  // averaged over the blocks and the largest max/mean expert load.
  moe::MoeStats moe_stats(const ActivationSet<T>& set) const;
  // (B, T, C): the residual stream after the chunk's last block, for the next chunk.
  const T* output(const ActivationSet<T>& set) const;
  // This rank's logits (B, T, local_vocab()) of the set's forward (a chunk with the head): after
  // backward() their gradient, computed in place; after backward_input() nullptr (released).
  const T* logits(const ActivationSet<T>& set) const;
  // out[0, vocab_size) = the whole-vocabulary logits of row n of the set's forward.
  void logits_row(const ActivationSet<T>& set, int n, T* out) const;

  // Backward of the set's forward (which had targets) on a chunk with the head, once: it turns
  // the logits into their gradient in place. Adds loss_scale * d(mean loss)/d(param) into the
  // model's gradients (accumulates: zero them between steps) and calls on_ready with each slice
  // it finishes.
  void backward(ActivationSet<T>& set, T loss_scale = T(1), const GradReadyFn& on_ready = {});
  // Backward of a chunk without the head: `doutput` (B, T, C) is the gradient of output().
  void backward_from_output(ActivationSet<T>& set, const T* doutput,
                            const GradReadyFn& on_ready = {});
  // The split backward (options().split_backward): backward_input (B) computes the gradient of
  // the chunk's input (input_grad()), of the LayerNorms and of the head and the embedding (wte,
  // wpe: their W is cheap next to the logits it would keep), keeps the blocks' linear layers'
  // output gradients in place of activations it is done with and returns the set's B-only
  // buffers to the pool; backward_weights (W) then adds the blocks' linear layers' weight
  // gradients. B then W adds exactly what backward() / backward_from_output() add. doutput: the
  // output's gradient on a chunk without the head, nullptr on one with it (which starts from its
  // loss, scaled by loss_scale).
  void backward_input(ActivationSet<T>& set, T loss_scale, const T* doutput);
  void backward_weights(ActivationSet<T>& set);
  // (B, T, C): after the backward of the set on a chunk without the embedding, the gradient of
  // its input (in the workspace's scratch: valid until the next forward or backward run in it).
  const T* input_grad(const ActivationSet<T>& set) const;

  // Bytes of the B-only buffers in the pool (returned by split Bs, for the next forwards; never
  // freed).
  size_t pooled_bytes() const;

  // Attach a per-kernel timing profile (nullptr detaches); used by `loom bench train`.
  void set_profile(KernelProfile* profile);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

using GptExecutor = ChunkExecutor<float>;
extern template class ChunkExecutor<float>;
extern template class ChunkExecutor<double>;

}  // namespace loom
