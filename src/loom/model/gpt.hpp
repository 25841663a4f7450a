#pragma once
// GPT-2 model weights: flat parameter/gradient buffers and their layout. Templated on the scalar
// type so the whole model can be checked against finite differences in double precision;
// training uses GPT = GPTModel<float>.
//
// The model holds weights only. Running it is a ChunkExecutor's job (chunk_executor.hpp): an
// executor over a range of the model's blocks whose modes are fixed when it is built, on an
// activation set the caller owns (activation_set.hpp). ModelRunner (model_runner.hpp) bundles
// the three for a caller that runs the whole shard one batch at a time.
//
// One class serves every layout: a model holds a ModelShard — a pipeline stage (blocks
// [first_block, last_block), with the embedding on the first stage and ln_f + LM head + loss on
// the last) cut for tensor parallelism (Megatron-LM: c_attn and mlp.c_fc column-parallel,
// attn.c_proj and mlp.c_proj row-parallel, vocab-parallel wte / LM head / cross-entropy). The
// whole model on one rank is the default shard, run through the same code.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/model/model_shard.hpp"
#include "loom/model/moe/expert_parallel_group.hpp"
#include "loom/model/param_gather.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/model/tp_group.hpp"

namespace loom {

template <typename T>
class ChunkExecutor;

template <typename T>
class GPTModel {
 public:
  // `tp`: the shard's tensor-parallel group (its size and rank must be shard's tp_size and
  // tp_rank; it must outlive the model); nullptr when tp_size is 1. `ep`: the ranks that split a
  // mixture-of-experts model's experts in training forwards and backwards (every rank still
  // holds every expert's weights: evaluation and generation run them all here); nullptr: ep 1.
  explicit GPTModel(const GPTConfig& config, const ModelShard& shard = {},
                    TensorParallelGroup* tp = nullptr, moe::ExpertParallelGroup* ep = nullptr);
  ~GPTModel();
  GPTModel(const GPTModel&) = delete;
  GPTModel& operator=(const GPTModel&) = delete;

  const GPTConfig& config() const;
  const ModelShard& shard() const;
  const std::vector<ParamInfo>& layout() const;
  size_t num_params() const;
  // The flat parameter buffer, laid out by layout(); nullptr after bind_params.
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
  void zero_grad();
  // Moves the parameters out of the model, as bind_gradients does the gradients: tensor
  // layout()[i] is read at storage[i] from now on, and the flat buffer is freed. Tensors may share
  // memory (ZeRO-3's working buffers hold one unit at a time): the executors call gather->use()
  // before running each unit (param_gather.hpp), which puts its parameters there. `gather`
  // must outlive the model. Called before training; without it the model is unchanged.
  void bind_params(const std::vector<T*>& storage, ParamGather* gather);

  // GPT-2 initialisation from `seed`: weights N(0, 0.02), residual projections
  // (attn.c_proj.weight, mlp.c_proj.weight) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm gains 1.
  // Every shard draws the whole model's values and keeps its piece, so any layout starts from
  // the same model. Into `out` (n floats laid out by layout()) when given, else params().
  void init_weights(uint64_t seed, T* out = nullptr);

  // Columns of the logits this rank computes: the whole vocabulary at tp 1, its vocab-parallel
  // slice otherwise.
  int local_vocab() const;

  // Called by a backward each time a gradient slice grads()[begin, end) is final; slices come
  // in backward order, from the end of the buffer to its start.
  using GradReadyFn = std::function<void(size_t begin, size_t end)>;

  struct Impl;  // the weights' views (gpt_weights.hpp), for the executors

 private:
  friend class ChunkExecutor<T>;
  std::unique_ptr<Impl> impl_;
};

using GPT = GPTModel<float>;
extern template class GPTModel<float>;
extern template class GPTModel<double>;

}  // namespace loom
