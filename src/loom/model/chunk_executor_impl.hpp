#pragma once
// ChunkExecutor<T>::Impl: the chunk's geometry and modes, the planning of its activation sets and
// the forward and backward of its ends (embedding, head). Shared by chunk_executor.cpp (planning,
// accessors) and chunk_executor_run.cpp (forward, backward); nothing else includes it.
#include "loom/model/chunk_executor.hpp"

#include <omp.h>

#include <memory>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/activation_state.hpp"
#include "loom/model/gpt_block.hpp"
#include "loom/model/gpt_weights.hpp"
#include "loom/model/kernel_profile.hpp"

namespace loom {

template <typename T>
struct ChunkExecutor<T>::Impl {
  using S = gpt_internal::ActivationState<T>;
  using GradReadyFn = typename GPTModel<T>::GradReadyFn;

  typename GPTModel<T>::Impl& m;        // the weights
  gpt_internal::BackwardScratch<T>& ws;  // the workspace's scratch
  ExecutorOptions opt;
  int lo = 0, hi = 0;  // the chunk's blocks [lo, hi) of the shard's (into m.p.blocks)
  bool with_embedding = false, with_head = false;
  // B-only buffers that no set holds (returned by split Bs), for the next forwards.
  std::vector<std::unique_ptr<gpt_internal::BOnlyBuffers<T>>> pool;
  KernelProfile* profile = nullptr;

  Impl(typename GPTModel<T>::Impl& weights, gpt_internal::BackwardScratch<T>& scratch,
       const ExecutorOptions& o);

  // Elements carved out of a set's buffers (masks: bytes).
  struct Carved {
    size_t kept = 0, b_only = 0, masks = 0;
  };
  // Lays out set s for its forward (s.B x s.Tn rows): the kept tensors from kept_base, the
  // B-only ones from b_base and mask_base. With null B-only bases (a set waiting for W) its
  // B-only pointers become nullptr.
  Carved carve(S& s, T* kept_base, T* b_base, uint8_t* mask_base) const;
  // Whether a forward of `seq` tokens per row runs sequence parallel: the shard asks for it and
  // seq is a multiple of tp (a sample's prompt of another length runs plain tp).
  bool sequence_parallel(int seq) const {
    return m.shard.sequence_parallel && seq % m.shard.tp_size == 0;
  }
  // The activation plan of the chunk for a forward of batch x seq rows in the executor's modes.
  ActivationBytes plan(int batch, int seq) const;
  // Readies s (and the shared scratch) for its forward: buffers as activation_plan sizes them
  // (its B-only ones from the pool if it holds none), the chunk's tensors carved out of them.
  void ensure_capacity(S& s);
  // Carves the shared scratch for s's shape, growing it if needed: at every forward and
  // backward, as the sets sharing it may differ in shape.
  void ensure_scratch(const S& s);
  // After a split B: the set keeps what W needs and returns its B-only buffers to the pool.
  void release_b_only(S& s);
  // Buffers grow only (a set switched between a stage's chunks, as evaluation and sampling do
  // under interleaved schedules, keeps one buffer big enough for each and allocates no more),
  // except on a change of recompute mode, which trades memory on purpose.
  template <typename U>
  void fit(AlignedBuffer<U>& buf, size_t n, bool exact) {
    if (buf.size() >= n && !(exact && buf.size() != n)) return;
    buf.resize(n);
    ++ws.allocations;
  }
  // Before `unit` runs (a block's index among the shard's, or ParamGather::kEnds): its parameters
  // put in place when the model does not hold them all (ZeRO-3), and the gather of `next`, the
  // unit that runs after it, started.
  void use(int unit, int next) const {
    if (m.gather) m.gather->use(unit, next);
  }
  // What the blocks of a forward or backward of s share.
  gpt_internal::BlockPass<T> pass(const S& s) const;

  T forward(S& s, const int32_t* tok, const T* input, const int32_t* tgt, int batch, int seq,
            bool train, Rng* rng, int64_t first_sample);
  void embed(S& s, const gpt_internal::BlockPass<T>& pass);
  T head_forward(S& s, const gpt_internal::BlockPass<T>& pass);
  // weights false: B only (split backward), keeping what backward_weights needs.
  void backward(S& s, T loss_scale, const T* doutput, const GradReadyFn& on_ready, bool weights);
  void head_backward(S& s, const gpt_internal::BlockPass<T>& pass, T loss_scale);
  // dout: the gradient of the embedding's output, every row (N, C).
  void embedding_weights(S& s, const gpt_internal::BlockPass<T>& pass, const T* dout);
  void backward_weights(S& s);
};

}  // namespace loom
