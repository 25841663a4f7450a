#pragma once
// GPTModel<T>::Impl and the views and activation planning it is built from: shared by the forward
// (gpt.cpp) and the backward (gpt_backward.cpp); nothing else includes it.
#include "loom/model/gpt.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "loom/core/aligned_buffer.hpp"
#include "loom/core/check.hpp"
#include "loom/core/trace.hpp"
#include "loom/kernels/cpu/attention.hpp"
#include "loom/kernels/cpu/dropout.hpp"
#include "loom/kernels/cpu/embedding.hpp"
#include "loom/kernels/cpu/gelu.hpp"
#include "loom/kernels/cpu/layernorm.hpp"
#include "loom/kernels/cpu/linear.hpp"
#include "loom/kernels/cpu/lm_head.hpp"
#include "loom/kernels/cpu/parallel.hpp"
#include "loom/kernels/cpu/residual.hpp"
#include "loom/kernels/cpu/softmax_ce.hpp"
#include "loom/kernels/cpu/vocab_parallel_ce.hpp"
#include "loom/kernels/cpu/vocab_parallel_embedding.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/kernel_profile.hpp"

namespace loom {


using namespace kernels;

namespace gpt_internal {

// Pointers to one block's tensors inside a flat buffer (parameters or gradients), and the
// block's range of that buffer.
template <typename T>
struct BlockTensors {
  T *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *mlp_w,
      *mlp_b;
  size_t begin, end;
};

// The shard's tensors; nullptr for those it does not hold.
template <typename T>
struct ModelTensors {
  T *wte, *wpe, *lnf_w, *lnf_b;
  std::vector<BlockTensors<T>> blocks;  // the shard's blocks (of all its chunks), in order
};

// storage[i]: where layout[i] lives (base + offset for a flat buffer).
template <typename T>
ModelTensors<T> bind_tensors(const std::vector<T*>& storage, const std::vector<ParamInfo>& layout,
                             const std::vector<int>& block_ids) {
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < layout.size(); ++i) at[layout[i].name] = i;
  auto get = [&](const std::string& name) -> T* {
    auto it = at.find(name);
    return it == at.end() ? nullptr : storage[it->second];
  };
  ModelTensors<T> m;
  m.wte = get("transformer.wte.weight");
  m.wpe = get("transformer.wpe.weight");
  m.lnf_w = get("transformer.ln_f.weight");
  m.lnf_b = get("transformer.ln_f.bias");
  for (int l : block_ids) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    const ParamInfo& head = layout[at.at(h + "ln_1.weight")];
    const ParamInfo& tail = layout[at.at(h + "mlp.c_proj.bias")];
    m.blocks.push_back({get(h + "ln_1.weight"), get(h + "ln_1.bias"), get(h + "attn.c_attn.weight"),
                        get(h + "attn.c_attn.bias"), get(h + "attn.c_proj.weight"),
                        get(h + "attn.c_proj.bias"), get(h + "ln_2.weight"), get(h + "ln_2.bias"),
                        get(h + "mlp.c_fc.weight"), get(h + "mlp.c_fc.bias"),
                        get(h + "mlp.c_proj.weight"), get(h + "mlp.c_proj.bias"), head.offset,
                        tail.offset + tail.numel});
  }
  return m;
}

// Pointers to every tensor of a flat buffer laid out by `layout`.
template <typename T>
std::vector<T*> flat_storage(T* base, const std::vector<ParamInfo>& layout) {
  std::vector<T*> out;
  for (const auto& p : layout) out.push_back(base + p.offset);
  return out;
}

// Activations of one block kept for the backward. Under tensor parallelism the attention and MLP
// inner tensors hold this rank's heads / hidden units only: Cl = C/tp, Hl = H/tp, Fl = 4C/tp.
// The linear layers' inputs and outputs (ln1, qkv, atty, mid, ln2, fc, fc_gelu and the block's
// output) live in the set's kept buffer, the rest (statistics, probabilities, masks) in its
// B-only buffers (ActivationState).
template <typename T>
struct BlockActs {
  T *ln1, *ln1_mean, *ln1_rstd;  // ln_1 output (N, C) and its statistics (N)
  T* qkv;                        // (N, 3Cl)
  T* att;                        // (B, Hl, T, T) attention probabilities
  T* atty;                       // (N, Cl) attention output before c_proj
  T* mid;                        // (N, C) residual stream after the attention branch
  T *ln2, *ln2_mean, *ln2_rstd;
  T* fc;                         // (N, Fl) c_fc output (GELU input)
  T* fc_gelu;                    // (N, Fl)
  uint8_t *att_mask, *proj_mask, *mlp_mask;  // dropout masks (nullptr without dropout)
  // Split backward only: the gradients of the four linear layers' outputs, kept by B for W. They
  // take the place of activations that B has finished with when it writes them (qkv, mid, fc and
  // the block's output), so a split backward needs no more activation memory than a fused one.
  T *d_qkv, *d_proj, *d_fc, *d_mlp;  // (N, 3Cl), (N, C), (N, Fl), (N, C)
};

// Where dropout applies (a mask seed's site field).
enum class DropSite : uint64_t { kEmbedding, kAttention, kAttentionProj, kMlpProj };

// Bump allocator over a flat buffer (base == nullptr: every tensor is nullptr, only `used`
// counts). Every tensor is rounded up to 64 elements, as activation_plan counts them.
template <typename U>
struct Carver {
  U* base;
  size_t used = 0;
  U* take(size_t n) {
    U* p = base ? base + used : nullptr;
    used += carved_elems(n);  // keep every tensor 64-byte aligned
    return p;
  }
};

// What only a forward and its B read: the stage input, LayerNorm statistics, attention
// probabilities, dropout masks, and the head's tensors (logits included; the head's weight
// gradient is taken inside B). A set holds its B-only buffers from its forward to the end of a
// split B, then returns them to the model's pool for the next forward (no set waiting for W
// holds them); after a fused backward the set keeps them (nothing waits).
template <typename T>
struct BOnlyBuffers {
  AlignedBuffer<T> acts;
  AlignedBuffer<uint8_t> masks;
  size_t bytes() const { return acts.size() * sizeof(T) + masks.size(); }
};

// Everything one forward leaves for its backward: the model's current activation set. A
// pipeline stage with several micro-batches in flight keeps one set per micro-batch and swaps
// them in and out (GPTModel::swap_activations). The backward's scratch is the model's, shared by
// all sets (GPTModel::Impl).
template <typename T>
struct ActivationState {
  // The chunk and the modes the set was planned for (by its last forward).
  int planned_chunk = -1;
  AlignedBuffer<T> kept_buf;  // what W needs, and the chunk's output
  std::unique_ptr<BOnlyBuffers<T>> b_only;  // nullptr while the set waits for W
  size_t logits_elems = 0;
  std::vector<BlockActs<T>> blocks;  // the current chunk's blocks
  T *resid0 = nullptr, *lnf = nullptr, *lnf_mean = nullptr, *lnf_rstd = nullptr, *logits = nullptr,
    *losses = nullptr, *lse = nullptr;  // resid0: stage input (N, C)
  T* ce_stats = nullptr;  // tp > 1: row max (N), then sum-exp and target logit (2N)
  std::vector<T*> resid_out;  // block's output (N, C)
  uint8_t* emb_mask = nullptr;

  // The forward these activations are of.
  int B = 0, Tn = 0;
  bool have_targets = false, dropped = false, backward_done = false;
  bool planned_split = false;    // the forward ran with the split backward on
  Recompute planned_recompute = Recompute::kNone;  // the mode the buffers were planned for
  bool weights_pending = false;  // B has run, W not yet
  std::vector<int32_t> tokens, targets;

  size_t bytes() const { return kept_buf.size() * sizeof(T) + (b_only ? b_only->bytes() : 0); }
};

}  // namespace gpt_internal

using namespace gpt_internal;

template <typename T>
struct GPTModel<T>::Activations {
  ActivationState<T> state;
};

template <typename T>
struct GPTModel<T>::Impl : ActivationState<T> {
  GPTConfig cfg;
  ModelShard shard;
  TensorParallelGroup* tp;  // nullptr: tp 1
  std::vector<int> block_id;     // global index of each of the shard's blocks
  std::vector<int> chunk_begin;  // chunk c has the shard's blocks [chunk_begin[c], chunk_begin[c+1])
  // The chunk the next forward / backward runs (ModelShard::chunks): its blocks [lo, hi) (into
  // p.blocks; its activations are blocks[0, hi - lo)), and whether it has the embedding, the head.
  int chunk = 0, lo = 0, hi = 0;
  bool with_embedding = true, with_head = true;
  int C, Cl, Hl, Fl;        // widths: model, local attention, local heads, local MLP
  VocabSlice vocab{0, 0, 0};  // this rank's wte rows (when it holds wte)
  std::vector<ParamInfo> layout;
  size_t n_params = 0;
  size_t prefix_end = 0;  // [0, prefix_end): wte and wpe; [head_begin, n_params): ln_f
  size_t head_begin = 0;
  AlignedBuffer<T> params, grads;  // grads: empty once bind_gradients has moved them
  std::vector<T*> grad_storage;     // where each layout tensor's gradient lives
  ModelTensors<T> p, g;             // views into params and grad_storage
  KernelProfile* profile = nullptr;

  using S = ActivationState<T>;
  using S::kept_buf, S::b_only, S::logits_elems;
  using S::blocks, S::resid0, S::lnf, S::lnf_mean, S::lnf_rstd, S::logits, S::losses, S::lse;
  using S::ce_stats, S::resid_out, S::emb_mask, S::B, S::Tn, S::have_targets;
  using S::dropped, S::backward_done, S::planned_split, S::weights_pending, S::tokens, S::targets;
  using S::planned_recompute, S::planned_chunk;
  // Shared by every activation set: the backward's scratch (dbranch is also the forward's branch
  // buffer), big enough for every shape seen and carved for the running one; dres ends as the
  // gradient of the stage input.
  AlignedBuffer<T> scratch_buf;
  T *dres = nullptr, *dln = nullptr, *dqkv = nullptr, *datty = nullptr, *dfc = nullptr,
    *dbranch = nullptr, *att_scratch = nullptr;
  size_t att_scratch_size = 0;
  // Per chunk: B-only buffers that no set holds (returned by split Bs), for the next forwards.
  std::vector<std::vector<std::unique_ptr<BOnlyBuffers<T>>>> b_only_pool;
  size_t allocations = 0;  // activation buffers allocated so far (GPTModel::activation_allocations)
  bool split = false;  // backward as B (input gradient) then W (weight gradients)
  // Dropout of the running forward: its key (drawn once from its Rng) and the index of its first
  // row's sample.
  uint64_t drop_key = 0;
  int64_t drop_first_sample = 0;
  Recompute recompute = Recompute::kNone;

  Impl(const GPTConfig& c, const ModelShard& s, TensorParallelGroup* group)
      : cfg(c), shard(s), tp(group) {
    cfg.validate();
    shard.validate(cfg);
    LOOM_CHECK(shard.tp_size == 1 || (tp != nullptr && tp->size() == shard.tp_size &&
                                      tp->rank() == shard.tp_rank),
               "GPTModel: a shard of tp_size ", shard.tp_size,
               " needs a tensor-parallel group of that size with its rank ", shard.tp_rank);
    if (shard.tp_size == 1) tp = nullptr;  // tp 1 is the single-rank code path
    for (const BlockRange& r : shard.block_chunks(cfg)) {
      chunk_begin.push_back(static_cast<int>(block_id.size()));
      for (int l = r.first; l < r.last; ++l) block_id.push_back(l);
    }
    chunk_begin.push_back(static_cast<int>(block_id.size()));
    b_only_pool.resize(shard.num_chunks());
    select_chunk(0);
    C = cfg.d_model;
    Cl = C / shard.tp_size;
    Hl = cfg.n_head / shard.tp_size;
    Fl = 4 * C / shard.tp_size;
    layout = gpt_param_layout(cfg, shard);
    n_params = layout.back().offset + layout.back().numel;
    params.resize(n_params);
    grads.resize(n_params);
    grad_storage = flat_storage(grads.data(), layout);
    p = bind_tensors(flat_storage(params.data(), layout), layout, block_id);
    g = bind_tensors(grad_storage, layout, block_id);
    for (const auto& info : layout) {
      if (info.name == "transformer.wte.weight")
        vocab = {static_cast<int>(info.shape[0]), static_cast<int>(info.split.dim < 0 ? info.shape[0] : info.split.valid),
                 static_cast<int>(info.split.start)};
    }
    prefix_end = p.blocks.empty() ? (shard.has_head ? n_params - 2 * C : n_params) : p.blocks[0].begin;
    head_begin = shard.has_head ? n_params - 2 * C : n_params;
  }

  void select_chunk(int c) {
    LOOM_CHECK(c >= 0 && c < shard.num_chunks(), "set_chunk: chunk ", c, " of a model with ",
               shard.num_chunks(), " chunks");
    chunk = c;
    lo = chunk_begin[c];
    hi = chunk_begin[c + 1];
    with_embedding = c == 0 && shard.has_embedding;
    with_head = c + 1 == shard.num_chunks() && shard.has_head;
  }

  // Elements carved out of a set's buffers (masks: bytes).
  struct Carved {
    size_t kept = 0, b_only = 0, masks = 0;
  };

  // Lays out the current set for its forward (B x Tn rows): the kept tensors from kept_base, the
  // B-only ones from b_base and mask_base. With null B-only bases (a set waiting for W) its B-only
  // pointers become nullptr.
  Carved carve(T* kept_base, T* b_base, uint8_t* mask_base) {
    const size_t N = static_cast<size_t>(B) * Tn, NT = N * Tn;
    const bool drop = cfg.dropout > 0;
    Carver<T> k{kept_base}, a{b_base};
    Carver<uint8_t> m{mask_base};
    resid0 = a.take(N * C);
    emb_mask = drop && with_embedding ? m.take(N * C) : nullptr;
    // A block's recomputable activations, the linear layers' inputs and outputs from `lin`; att is
    // taken only when not shared (shared_att is nullptr in the measuring pass too, hence the flag).
    const bool selective = recompute == Recompute::kSelective;
    auto take_block = [&](BlockActs<T>& b, Carver<T>& lin, T* shared_att) {
      b.ln1 = lin.take(N * C);
      b.ln1_mean = a.take(N);
      b.ln1_rstd = a.take(N);
      b.qkv = lin.take(N * 3 * Cl);
      b.att = selective ? shared_att : a.take(NT * Hl);
      b.atty = lin.take(N * Cl);
      b.mid = lin.take(N * C);
      b.ln2 = lin.take(N * C);
      b.ln2_mean = a.take(N);
      b.ln2_rstd = a.take(N);
      b.fc = lin.take(N * Fl);
      b.fc_gelu = lin.take(N * Fl);
    };
    // Recomputation shares buffers between the blocks, as each block's backward refills them:
    // kFull one whole set of block activations (B-only: without a split backward nothing waits
    // for W), kSelective the attention probabilities.
    BlockActs<T> shared{};
    if (recompute == Recompute::kFull) take_block(shared, a, nullptr);
    T* shared_att = selective ? a.take(NT * Hl) : nullptr;
    blocks.assign(hi - lo, {});
    resid_out.assign(hi - lo, nullptr);
    for (int l = 0; l < hi - lo; ++l) {
      BlockActs<T>& b = blocks[l];
      if (recompute == Recompute::kFull)
        b = shared;
      else
        take_block(b, k, shared_att);
      resid_out[l] = k.take(N * C);
      b.att_mask = drop ? m.take(NT * Hl) : nullptr;
      b.proj_mask = drop ? m.take(N * C) : nullptr;
      b.mlp_mask = drop ? m.take(N * C) : nullptr;
      b.d_qkv = b.d_proj = b.d_fc = b.d_mlp = nullptr;
      if (split) {
        // B reads qkv last in the attention's backward, mid in ln_2's, fc in the GELU's, and
        // resid_out[l] not at all (block l + 1's backward, before it, was its last reader).
        b.d_qkv = b.qkv;
        b.d_proj = b.mid;
        b.d_fc = b.fc;
        b.d_mlp = resid_out[l];
      }
    }
    lnf = lnf_mean = lnf_rstd = logits = losses = lse = ce_stats = nullptr;
    logits_elems = 0;
    if (with_head) {
      lnf = a.take(N * C);
      lnf_mean = a.take(N);
      lnf_rstd = a.take(N);
      logits_elems = N * vocab.Vl;
      logits = a.take(logits_elems);
      losses = a.take(N);
      lse = a.take(N);
      if (tp) ce_stats = a.take(3 * N);
    }
    return {k.used, a.used, m.used};
  }

  // The activation plan of the current chunk for a forward of batch x seq rows in the modes the
  // current set was planned for.
  ActivationBytes activation_plan_of(int batch, int seq) const {
    ActivationShape s;
    s.blocks = hi - lo;
    s.embedding = with_embedding;
    s.head = with_head;
    s.tp = shard.tp_size;
    s.batch = batch;
    s.seq = seq;
    s.recompute = planned_recompute;
    s.split_backward = planned_split;
    s.threads = omp_get_max_threads();
    s.elem_bytes = sizeof(T);
    return activation_plan(cfg, s);
  }

  // Carves the backward's scratch for N rows, sequence length Tn and nthreads threads out of base
  // (nullptr: pointers nullptr); returns the elements used.
  size_t carve_scratch(T* base, size_t N, int nthreads) {
    Carver<T> a{base};
    dres = a.take(N * C);
    dln = a.take(N * C);
    dqkv = a.take(N * 3 * Cl);
    datty = a.take(N * Cl);
    dfc = a.take(N * Fl);
    dbranch = a.take(N * C);
    att_scratch_size = attention_scratch_size({1, Tn, Cl, Hl}, nthreads);
    att_scratch = a.take(att_scratch_size);
    return a.used;
  }

  // Buffers grow only (a set switched between a stage's chunks, as evaluation and sampling do
  // under interleaved schedules, keeps one buffer big enough for each and allocates no more),
  // except on a change of recompute mode, which trades memory on purpose.
  template <typename U>
  void fit(AlignedBuffer<U>& buf, size_t n, bool exact) {
    if (buf.size() >= n && !(exact && buf.size() != n)) return;
    buf.resize(n);
    ++allocations;
  }

  // Readies the current set (and the shared scratch) for its forward (B x Tn rows): buffers as
  // activation_plan sizes them (its B-only ones from the chunk's pool if it holds none), the
  // current chunk's tensors carved out of them.
  void ensure_capacity() {
    const bool mode_changed = planned_recompute != recompute;
    planned_split = split;
    planned_recompute = recompute;
    planned_chunk = chunk;
    const ActivationBytes want = activation_plan_of(B, Tn);
    fit(kept_buf, want.kept() / sizeof(T), mode_changed);
    if (!b_only) {
      auto& pool = b_only_pool[chunk];
      if (pool.empty()) {
        b_only = std::make_unique<BOnlyBuffers<T>>();
      } else {
        b_only = std::move(pool.back());
        pool.pop_back();
      }
    }
    fit(b_only->acts, want.b_only() / sizeof(T), mode_changed);
    fit(b_only->masks, want.masks(), mode_changed);
    const Carved c = carve(kept_buf.data(), b_only->acts.data(), b_only->masks.data());
    LOOM_CHECK(c.kept * sizeof(T) == want.kept() && c.b_only * sizeof(T) == want.b_only() &&
                   c.masks == want.masks(),
               "GPTModel: the activations carved (kept ", c.kept * sizeof(T), ", B-only ",
               c.b_only * sizeof(T), ", masks ", c.masks, " bytes) differ from activation_plan's (",
               want.kept(), ", ", want.b_only(), ", ", want.masks(), ")");
    ensure_scratch();
  }

  // Carves the shared scratch for the current set's shape (B x Tn rows), growing it if needed: at
  // every forward and backward, as the sets sharing it may differ in shape.
  void ensure_scratch() {
    const int nthreads = omp_get_max_threads();
    const size_t want = activation_plan_of(B, Tn).scratch / sizeof(T);
    fit(scratch_buf, want, false);
    const size_t carved = carve_scratch(scratch_buf.data(), static_cast<size_t>(B) * Tn, nthreads);
    LOOM_CHECK(carved == want, "GPTModel: the scratch carved (", carved * sizeof(T),
               " bytes) differs from activation_plan's (", want * sizeof(T), ")");
  }

  // After a split B: the set keeps what W needs and returns its B-only buffers to the pool.
  void release_b_only() {
    b_only_pool[planned_chunk].push_back(std::move(b_only));
    carve(kept_buf.data(), nullptr, nullptr);
  }

  // Bytes of the shared scratch and of the pooled B-only buffers.
  size_t shared_bytes() const {
    size_t n = scratch_buf.size() * sizeof(T);
    for (const auto& pool : b_only_pool)
      for (const auto& b : pool) n += b->bytes();
    return n;
  }

  ProfileScope timed(Kernel k, bool backward) const { return ProfileScope(profile, k, backward); }

  // The tp all-reduce of partial sums (a no-op at tp 1).
  void reduce(T* data, size_t n) {
    if (tp) tp->allreduce_sum(data, n);
  }

  T forward(const int32_t* tok, const T* input, const int32_t* tgt, int batch, int seq,
            bool train, Rng* rng, int64_t first_sample);
  void embed(const int32_t* tok);
  // Block lo + l of the current chunk. redo: the recomputation of kFull in backward: reuses the
  // forward's dropout masks (draws none) and stops at the MLP's GELU (the backward needs nothing
  // after it).
  void block_forward(int l, const T* x, bool redo = false);
  // The forward's dropout masks of one site of global layer `layer` (-1: the embedding), laid
  // out (B, heads, per_head): each (sample, head) gets the mask that the key, the sample's index
  // drop_first_sample + b, the layer, the site and the global head (tp rank x heads + h for the
  // attention) define, so every layout draws the same masks for the same sample.
  void draw_masks(uint8_t* mask, int layer, DropSite site, int heads, size_t per_head);
  T head_forward();
  // weights false: B only (split backward), keeping what backward_weights needs.
  void backward(T loss_scale, const T* doutput, const GradReadyFn& on_ready, bool weights);
  void head_backward(T loss_scale);
  void block_backward(int l, bool weights);
  void embedding_weights();
  void backward_weights();
};

}  // namespace loom
