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

// Bump allocator over a flat buffer: the first pass (base == nullptr) only measures.
template <typename U>
struct Carver {
  U* base;
  size_t used = 0;
  U* take(size_t n) {
    U* p = base ? base + used : nullptr;
    used += (n + 63) / 64 * 64;  // keep every tensor 64-byte aligned
    return p;
  }
};

// Everything one forward leaves for its backward, and the scratch both use: the model's current
// activation set. A pipeline stage with several micro-batches in flight keeps one set per
// micro-batch and swaps them in and out (GPTModel::swap_activations).
template <typename T>
struct ActivationState {
  // Capacity the activation buffers were planned for: rows (B*T), B*T*T and T; and the chunk.
  size_t cap_rows = 0, cap_rows_t = 0, cap_t = 0;
  int planned_chunk = -1;
  int threads = 0;
  AlignedBuffer<T> acts_buf;
  AlignedBuffer<uint8_t> mask_buf;
  size_t logits_elems = 0;
  std::vector<BlockActs<T>> blocks;  // the current chunk's blocks
  T *resid0 = nullptr, *lnf = nullptr, *lnf_mean = nullptr, *lnf_rstd = nullptr, *logits = nullptr,
    *losses = nullptr, *lse = nullptr;  // resid0: stage input (N, C)
  T* ce_stats = nullptr;  // tp > 1: row max (N), then sum-exp and target logit (2N)
  std::vector<T*> resid_out;  // block's output (N, C)
  uint8_t* emb_mask = nullptr;
  // Backward scratch, shared by all blocks; dres ends as the gradient of the stage input.
  T *dres = nullptr, *dln = nullptr, *dqkv = nullptr, *datty = nullptr, *dfc = nullptr,
    *dbranch = nullptr, *att_scratch = nullptr;
  size_t att_scratch_size = 0;

  // The forward these activations are of.
  int B = 0, Tn = 0;
  bool have_targets = false, dropped = false, backward_done = false;
  bool planned_split = false;    // the buffers hold what a split backward keeps for W
  Recompute planned_recompute = Recompute::kNone;  // the mode the buffers were planned for
  bool weights_pending = false;  // B has run, W not yet
  std::vector<int32_t> tokens, targets;
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
  using S::cap_rows, S::cap_rows_t, S::cap_t, S::threads, S::acts_buf, S::mask_buf, S::logits_elems;
  using S::blocks, S::resid0, S::lnf, S::lnf_mean, S::lnf_rstd, S::logits, S::losses, S::lse;
  using S::ce_stats, S::resid_out, S::emb_mask, S::dres, S::dln, S::dqkv, S::datty, S::dfc;
  using S::dbranch, S::att_scratch, S::att_scratch_size, S::B, S::Tn, S::have_targets;
  using S::dropped, S::backward_done, S::planned_split, S::weights_pending, S::tokens, S::targets;
  using S::planned_recompute, S::planned_chunk;
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

  // Lays out all activations for N rows, N*T attention rows and sequence length T. Called with
  // base pointers == nullptr to measure, then again to assign.
  size_t plan(T* base, uint8_t* mbase, size_t* mask_elems, size_t N, size_t NT, size_t Tmax,
              int nthreads) {
    const bool drop = cfg.dropout > 0;
    Carver<T> a{base};
    Carver<uint8_t> m{mbase};
    resid0 = a.take(N * C);
    emb_mask = drop && with_embedding ? m.take(N * C) : nullptr;
    // A block's recomputable activations; att is taken only when not shared (shared_att is
    // nullptr in the measuring pass too, hence the flag).
    const bool selective = recompute == Recompute::kSelective;
    auto take_block = [&](BlockActs<T>& b, T* shared_att) {
      b.ln1 = a.take(N * C);
      b.ln1_mean = a.take(N);
      b.ln1_rstd = a.take(N);
      b.qkv = a.take(N * 3 * Cl);
      b.att = selective ? shared_att : a.take(NT * Hl);
      b.atty = a.take(N * Cl);
      b.mid = a.take(N * C);
      b.ln2 = a.take(N * C);
      b.ln2_mean = a.take(N);
      b.ln2_rstd = a.take(N);
      b.fc = a.take(N * Fl);
      b.fc_gelu = a.take(N * Fl);
    };
    // Recomputation shares buffers between the blocks, as each block's backward refills them:
    // kFull one whole set of block activations, kSelective the attention probabilities.
    BlockActs<T> shared{};
    if (recompute == Recompute::kFull) take_block(shared, nullptr);
    T* shared_att = selective ? a.take(NT * Hl) : nullptr;
    blocks.assign(hi - lo, {});
    resid_out.assign(hi - lo, nullptr);
    for (int l = 0; l < hi - lo; ++l) {
      BlockActs<T>& b = blocks[l];
      if (recompute == Recompute::kFull)
        b = shared;
      else
        take_block(b, shared_att);
      resid_out[l] = a.take(N * C);
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
    dres = a.take(N * C);
    dln = a.take(N * C);
    dqkv = a.take(N * 3 * Cl);
    datty = a.take(N * Cl);
    dfc = a.take(N * Fl);
    dbranch = a.take(N * C);
    att_scratch_size = attention_scratch_size({1, static_cast<int>(Tmax), Cl, Hl}, nthreads);
    att_scratch = a.take(att_scratch_size);
    *mask_elems = m.used;
    return a.used;
  }

  void ensure_capacity(int batch, int seq) {
    const size_t N = static_cast<size_t>(batch) * seq, NT = N * seq;
    const int nthreads = omp_get_max_threads();
    if (N <= cap_rows && NT <= cap_rows_t && static_cast<size_t>(seq) <= cap_t &&
        nthreads <= threads && planned_split == split && planned_recompute == recompute &&
        planned_chunk == chunk) {
      return;
    }
    cap_rows = std::max(cap_rows, N);
    cap_rows_t = std::max(cap_rows_t, NT);
    cap_t = std::max(cap_t, static_cast<size_t>(seq));
    threads = std::max(threads, nthreads);
    planned_split = split;
    planned_recompute = recompute;
    planned_chunk = chunk;
    size_t mask_elems = 0;
    const size_t elems = plan(nullptr, nullptr, &mask_elems, cap_rows, cap_rows_t, cap_t, threads);
    acts_buf.resize(elems);
    mask_buf.resize(mask_elems);
    plan(acts_buf.data(), mask_buf.data(), &mask_elems, cap_rows, cap_rows_t, cap_t, threads);
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
  void head_backward(T loss_scale, bool weights);
  void block_backward(int l, bool weights);
  void embedding_weights();
  void backward_weights();
};

}  // namespace loom
