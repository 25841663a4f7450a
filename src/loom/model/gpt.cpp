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

namespace {

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
  std::vector<BlockTensors<T>> blocks;  // the shard's blocks, first_block first
};

template <typename T>
ModelTensors<T> bind_tensors(T* base, const std::vector<ParamInfo>& layout, int first, int last) {
  std::map<std::string, const ParamInfo*> at;
  for (const auto& p : layout) at[p.name] = &p;
  auto get = [&](const std::string& name) -> T* {
    auto it = at.find(name);
    return it == at.end() ? nullptr : base + it->second->offset;
  };
  ModelTensors<T> m;
  m.wte = get("transformer.wte.weight");
  m.wpe = get("transformer.wpe.weight");
  m.lnf_w = get("transformer.ln_f.weight");
  m.lnf_b = get("transformer.ln_f.bias");
  for (int l = first; l < last; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    const ParamInfo& head = *at.at(h + "ln_1.weight");
    const ParamInfo& tail = *at.at(h + "mlp.c_proj.bias");
    m.blocks.push_back({get(h + "ln_1.weight"), get(h + "ln_1.bias"), get(h + "attn.c_attn.weight"),
                        get(h + "attn.c_attn.bias"), get(h + "attn.c_proj.weight"),
                        get(h + "attn.c_proj.bias"), get(h + "ln_2.weight"), get(h + "ln_2.bias"),
                        get(h + "mlp.c_fc.weight"), get(h + "mlp.c_fc.bias"),
                        get(h + "mlp.c_proj.weight"), get(h + "mlp.c_proj.bias"), head.offset,
                        tail.offset + tail.numel});
  }
  return m;
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
  // Split backward only: the gradients of the four linear layers' outputs, kept by B for W.
  T *d_qkv, *d_proj, *d_fc, *d_mlp;  // (N, 3Cl), (N, C), (N, Fl), (N, C)
};

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
  // Capacity the activation buffers were planned for: rows (B*T), B*T*T and T.
  size_t cap_rows = 0, cap_rows_t = 0, cap_t = 0;
  int threads = 0;
  AlignedBuffer<T> acts_buf;
  AlignedBuffer<uint8_t> mask_buf;
  size_t logits_elems = 0;
  std::vector<BlockActs<T>> blocks;
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

}  // namespace

template <typename T>
struct GPTModel<T>::Activations {
  ActivationState<T> state;
};

template <typename T>
struct GPTModel<T>::Impl : ActivationState<T> {
  GPTConfig cfg;
  ModelShard shard;
  TensorParallelGroup* tp;  // nullptr: tp 1
  int first, last;          // the shard's blocks
  int C, Cl, Hl, Fl;        // widths: model, local attention, local heads, local MLP
  VocabSlice vocab{0, 0, 0};  // this rank's wte rows (when it holds wte)
  std::vector<ParamInfo> layout;
  size_t n_params = 0;
  size_t prefix_end = 0;  // [0, prefix_end): wte and wpe; [head_begin, n_params): ln_f
  size_t head_begin = 0;
  AlignedBuffer<T> params, grads;
  ModelTensors<T> p, g;  // views into params and grads
  KernelProfile* profile = nullptr;

  using S = ActivationState<T>;
  using S::cap_rows, S::cap_rows_t, S::cap_t, S::threads, S::acts_buf, S::mask_buf, S::logits_elems;
  using S::blocks, S::resid0, S::lnf, S::lnf_mean, S::lnf_rstd, S::logits, S::losses, S::lse;
  using S::ce_stats, S::resid_out, S::emb_mask, S::dres, S::dln, S::dqkv, S::datty, S::dfc;
  using S::dbranch, S::att_scratch, S::att_scratch_size, S::B, S::Tn, S::have_targets;
  using S::dropped, S::backward_done, S::planned_split, S::weights_pending, S::tokens, S::targets;
  using S::planned_recompute;
  bool split = false;  // backward as B (input gradient) then W (weight gradients)
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
    first = shard.first_block;
    last = shard.end_block(cfg);
    C = cfg.d_model;
    Cl = C / shard.tp_size;
    Hl = cfg.n_head / shard.tp_size;
    Fl = 4 * C / shard.tp_size;
    layout = gpt_param_layout(cfg, shard);
    n_params = layout.back().offset + layout.back().numel;
    params.resize(n_params);
    grads.resize(n_params);
    p = bind_tensors(params.data(), layout, first, last);
    g = bind_tensors(grads.data(), layout, first, last);
    for (const auto& info : layout) {
      if (info.name == "transformer.wte.weight")
        vocab = {static_cast<int>(info.shape[0]), static_cast<int>(info.split.dim < 0 ? info.shape[0] : info.split.valid),
                 static_cast<int>(info.split.start)};
    }
    prefix_end = p.blocks.empty() ? (shard.has_head ? n_params - 2 * C : n_params) : p.blocks[0].begin;
    head_begin = shard.has_head ? n_params - 2 * C : n_params;
  }

  // Lays out all activations for N rows, N*T attention rows and sequence length T. Called with
  // base pointers == nullptr to measure, then again to assign.
  size_t plan(T* base, uint8_t* mbase, size_t* mask_elems, size_t N, size_t NT, size_t Tmax,
              int nthreads) {
    const bool drop = cfg.dropout > 0;
    Carver<T> a{base};
    Carver<uint8_t> m{mbase};
    resid0 = a.take(N * C);
    emb_mask = drop && shard.has_embedding ? m.take(N * C) : nullptr;
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
    blocks.assign(last - first, {});
    resid_out.assign(last - first, nullptr);
    for (int l = 0; l < last - first; ++l) {
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
        b.d_qkv = a.take(N * 3 * Cl);
        b.d_proj = a.take(N * C);
        b.d_fc = a.take(N * Fl);
        b.d_mlp = a.take(N * C);
      }
    }
    lnf = lnf_mean = lnf_rstd = logits = losses = lse = ce_stats = nullptr;
    logits_elems = 0;
    if (shard.has_head) {
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
        nthreads <= threads && planned_split == split && planned_recompute == recompute) {
      return;
    }
    cap_rows = std::max(cap_rows, N);
    cap_rows_t = std::max(cap_rows_t, NT);
    cap_t = std::max(cap_t, static_cast<size_t>(seq));
    threads = std::max(threads, nthreads);
    planned_split = split;
    planned_recompute = recompute;
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
            bool train, Rng* rng);
  void embed(const int32_t* tok, Rng* rng);
  // redo: the recomputation of kFull in backward: reuses the forward's dropout masks (no draws
  // from rng) and stops at the MLP's GELU (the backward needs nothing after it).
  void block_forward(int l, const T* x, Rng* rng, bool redo = false);
  T head_forward();
  // weights false: B only (split backward), keeping what backward_weights needs.
  void backward(T loss_scale, const T* doutput, const GradReadyFn& on_ready, bool weights);
  void head_backward(T loss_scale, bool weights);
  void block_backward(int l, bool weights);
  void embedding_weights();
  void backward_weights();
};

template <typename T>
T GPTModel<T>::Impl::forward(const int32_t* tok, const T* input, const int32_t* tgt, int batch,
                             int seq, bool train, Rng* rng) {
  LOOM_CHECK(batch > 0, "forward: batch must be > 0, got ", batch);
  LOOM_CHECK(seq > 0 && seq <= cfg.context_len, "forward: sequence length ", seq,
             " must be in [1, context_len = ", cfg.context_len, "]");
  const int N = batch * seq;
  LOOM_CHECK(!weights_pending, "forward: the last backward_input still waits for its "
             "backward_weights (it would lose what they need)");
  LOOM_CHECK(!(split && recompute == Recompute::kFull), "recompute full cannot run with the split "
             "backward (zero-bubble schedules): backward_weights needs every block's layer inputs, "
             "which full recomputation does not keep; use recompute selective or none");
  dropped = train && cfg.dropout > 0;
  LOOM_CHECK(!dropped || rng != nullptr, "forward: dropout ", cfg.dropout,
             " in training needs a dropout_rng");
  if (tok != nullptr) check_tokens(tok, N, cfg.vocab_size, "tokens");
  have_targets = tgt != nullptr && shard.has_head;
  if (have_targets) check_tokens(tgt, N, cfg.vocab_size, "targets");
  ensure_capacity(batch, seq);
  B = batch;
  Tn = seq;
  backward_done = false;
  if (tok != nullptr) tokens.assign(tok, tok + N);
  if (have_targets) targets.assign(tgt, tgt + N);
  if (tok != nullptr)
    embed(tok, rng);
  else
    std::memcpy(resid0, input, static_cast<size_t>(N) * C * sizeof(T));
  const T* x = resid0;
  for (int l = 0; l < last - first; ++l) {
    // Trace: one event per block (named like the backward's "backward h.<l>" events).
    const double block_start = trace::enabled() ? trace::now_us() : -1;
    block_forward(l, x, rng);
    if (block_start >= 0) trace::complete("forward h." + std::to_string(first + l), "compute", block_start);
    x = resid_out[l];
  }
  return shard.has_head ? head_forward() : T(0);
}

template <typename T>
void GPTModel<T>::Impl::embed(const int32_t* tok, Rng* rng) {
  const size_t NC = static_cast<size_t>(B) * Tn * C;
  {
    auto t = timed(Kernel::kEmbedding, false);
    if (!tp) {
      embedding_forward(resid0, tok, p.wte, p.wpe, B, Tn, C);
    } else {
      vocab_parallel_embedding_forward(resid0, tok, p.wte, B * Tn, C, vocab.vocab_start,
                                       vocab.valid);
      reduce(resid0, NC);
      add_position_embedding(resid0, p.wpe, B, Tn, C);
    }
  }
  if (dropped) {
    auto t = timed(Kernel::kDropout, false);
    dropout_mask(emb_mask, NC, cfg.dropout, rng->next_u64());
    dropout_forward(resid0, resid0, emb_mask, cfg.dropout, NC);
  }
}

template <typename T>
void GPTModel<T>::Impl::block_forward(int l, const T* x, Rng* rng, bool redo) {
  const int N = B * Tn;
  const size_t NC = static_cast<size_t>(N) * C;
  const float pdrop = cfg.dropout;
  const BlockTensors<T>& w = p.blocks[l];
  BlockActs<T>& a = blocks[l];
  // Residual-branch dropout: x_out = x_in + dropout(branch), with the branch in dbranch (free
  // during the forward). The stream is replicated over the tp ranks, and so are its masks.
  auto add_branch = [&](T* out, const T* in, T* branch, uint8_t* mask) {
    if (dropped) {
      auto t = timed(Kernel::kDropout, false);
      if (!redo) dropout_mask(mask, NC, pdrop, rng->next_u64());
      dropout_forward(branch, branch, mask, pdrop, NC);
    }
    auto t = timed(Kernel::kResidual, false);
    residual_forward(out, in, branch, NC);
  };
  // A row-parallel projection's bias is added once, by tp rank 0, before the all-reduce.
  const bool add_bias = shard.tp_rank == 0;
  {
    auto t = timed(Kernel::kLayerNorm, false);
    layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, w.ln1_w, w.ln1_b, N, C);
  }
  {
    auto t = timed(Kernel::kMatmulQKV, false);
    linear_forward(a.qkv, a.ln1, w.qkv_w, w.qkv_b, N, C, 3 * Cl);
  }
  {
    auto t = timed(Kernel::kAttention, false);
    uint8_t* mask = dropped ? a.att_mask : nullptr;
    if (dropped && !redo) {
      // Each tp rank drops in its own heads: a distinct stream per rank (rank 0's is tp 1's).
      const uint64_t seed = rng->next_u64() + 0x9e3779b97f4a7c15ULL * shard.tp_rank;
      dropout_mask(mask, static_cast<size_t>(N) * Tn * Hl, pdrop, seed);
    }
    attention_forward(a.atty, a.att, a.qkv, mask, pdrop, AttentionShape{B, Tn, Cl, Hl},
                      att_scratch, att_scratch_size);
  }
  {
    auto t = timed(Kernel::kMatmulAttnProj, false);
    linear_forward(dbranch, a.atty, w.proj_w, add_bias ? w.proj_b : nullptr, N, Cl, C);
  }
  reduce(dbranch, NC);
  add_branch(a.mid, x, dbranch, a.proj_mask);
  {
    auto t = timed(Kernel::kLayerNorm, false);
    layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, w.ln2_w, w.ln2_b, N, C);
  }
  {
    auto t = timed(Kernel::kMatmulFC, false);
    linear_forward(a.fc, a.ln2, w.fc_w, w.fc_b, N, C, Fl);
  }
  {
    auto t = timed(Kernel::kGelu, false);
    gelu_forward(a.fc_gelu, a.fc, static_cast<size_t>(N) * Fl);
  }
  if (redo) return;
  {
    auto t = timed(Kernel::kMatmulMLPProj, false);
    linear_forward(dbranch, a.fc_gelu, w.mlp_w, add_bias ? w.mlp_b : nullptr, N, Fl, C);
  }
  reduce(dbranch, NC);
  add_branch(resid_out[l], a.mid, dbranch, a.mlp_mask);
}

template <typename T>
T GPTModel<T>::Impl::head_forward() {
  const int N = B * Tn;
  const T* x = last > first ? resid_out[last - first - 1] : resid0;
  {
    auto t = timed(Kernel::kLayerNorm, false);
    layernorm_forward(lnf, lnf_mean, lnf_rstd, x, p.lnf_w, p.lnf_b, N, C);
  }
  {
    auto t = timed(Kernel::kLMHead, false);
    lm_head_forward(logits, lnf, p.wte, N, C, vocab.Vl);
  }
  if (!have_targets) return T(0);
  auto t = timed(Kernel::kSoftmaxCE, false);
  if (!tp) {
    softmax_ce_forward(losses, lse, logits, targets.data(), N, vocab.Vl);
  } else {
    T* row_max = ce_stats;
    T* stats = ce_stats + N;
    vocab_parallel_row_max(row_max, logits, N, vocab);
    tp->allreduce_max(row_max, N);
    vocab_parallel_sum_exp(stats, logits, row_max, targets.data(), N, vocab);
    tp->allreduce_sum(stats, 2 * static_cast<size_t>(N));
    vocab_parallel_ce_finish(losses, lse, row_max, stats, N);
  }
  double sum = 0;
  for (int n = 0; n < N; ++n) sum += losses[n];
  return static_cast<T>(sum / N);
}

template <typename T>
void GPTModel<T>::Impl::backward(T loss_scale, const T* doutput, const GradReadyFn& on_ready,
                                 bool weights) {
  LOOM_CHECK(B > 0, "backward: no forward has run");
  LOOM_CHECK(!shard.has_head || have_targets, "backward: the last forward had no targets");
  LOOM_CHECK(!backward_done, "backward: already run for the last forward (it turns the logits "
             "into their gradient in place); run forward again");
  LOOM_CHECK(weights || planned_split, "backward_input: the last forward ran without "
             "set_split_backward(true)");
  backward_done = true;
  weights_pending = !weights;
  const size_t NC = static_cast<size_t>(B) * Tn * C;
  auto ready = [&](size_t begin, size_t end) {
    if (on_ready && begin < end) on_ready(begin, end);
  };
  if (shard.has_head) {
    head_backward(loss_scale, weights);
    ready(head_begin, n_params);
  } else {
    std::memcpy(dres, doutput, NC * sizeof(T));
  }
  for (int l = last - first - 1; l >= 0; --l) {
    block_backward(l, weights);
    ready(p.blocks[l].begin, p.blocks[l].end);
  }
  if (shard.has_embedding) {
    if (dropped) {
      auto t = timed(Kernel::kDropout, true);
      dropout_backward(dres, dres, emb_mask, cfg.dropout, NC);
    }
    if (weights) embedding_weights();
  }
  ready(0, prefix_end);
}

// dres holds the gradient of the embedding's output.
template <typename T>
void GPTModel<T>::Impl::embedding_weights() {
  auto t = timed(Kernel::kEmbedding, true);
  if (!tp)
    embedding_backward(g.wte, g.wpe, dres, tokens.data(), B, Tn, C);
  else
    vocab_parallel_embedding_backward(g.wte, g.wpe, dres, tokens.data(), B, Tn, C,
                                      vocab.vocab_start, vocab.valid);
}

// W of a split backward: every weight gradient from the layers' inputs (kept by the forward)
// and their outputs' gradients (kept by B), in the order the fused backward adds them.
template <typename T>
void GPTModel<T>::Impl::backward_weights() {
  LOOM_CHECK(weights_pending, "backward_weights: no backward_input is waiting for its weights");
  weights_pending = false;
  const int N = B * Tn;
  if (shard.has_head) {
    auto t = timed(Kernel::kLMHead, true);
    lm_head_backward<T>(nullptr, g.wte, logits, lnf, p.wte, N, C, vocab.Vl);
  }
  for (int l = last - first - 1; l >= 0; --l) {
    const BlockTensors<T>& w = p.blocks[l];
    const BlockTensors<T>& gw = g.blocks[l];
    const BlockActs<T>& a = blocks[l];
    {
      auto t = timed(Kernel::kMatmulMLPProj, true);
      linear_backward<T>(nullptr, gw.mlp_w, gw.mlp_b, a.d_mlp, a.fc_gelu, w.mlp_w, N, Fl, C);
    }
    {
      auto t = timed(Kernel::kMatmulFC, true);
      linear_backward<T>(nullptr, gw.fc_w, gw.fc_b, a.d_fc, a.ln2, w.fc_w, N, C, Fl);
    }
    {
      auto t = timed(Kernel::kMatmulAttnProj, true);
      linear_backward<T>(nullptr, gw.proj_w, gw.proj_b, a.d_proj, a.atty, w.proj_w, N, Cl, C);
    }
    {
      auto t = timed(Kernel::kMatmulQKV, true);
      linear_backward<T>(nullptr, gw.qkv_w, gw.qkv_b, a.d_qkv, a.ln1, w.qkv_w, N, C, 3 * Cl);
    }
  }
  if (shard.has_embedding) embedding_weights();
}

template <typename T>
void GPTModel<T>::Impl::head_backward(T loss_scale, bool weights) {
  const int N = B * Tn;
  {
    auto t = timed(Kernel::kSoftmaxCE, true);
    if (!tp)
      softmax_ce_backward(logits, logits, lse, targets.data(), loss_scale / T(N), N, vocab.Vl);
    else
      vocab_parallel_ce_backward(logits, logits, lse, targets.data(), loss_scale / T(N), N, vocab);
  }
  {
    auto t = timed(Kernel::kLMHead, true);
    // The logits' gradient stays in `logits` for W when the backward is split.
    lm_head_backward(dln, weights ? g.wte : nullptr, logits, lnf, p.wte, N, C, vocab.Vl);
  }
  reduce(dln, static_cast<size_t>(N) * C);  // each rank's vocabulary columns' share of dx
  const T* x_last = last > first ? resid_out[last - first - 1] : resid0;
  auto t = timed(Kernel::kLayerNorm, true);
  std::memset(dres, 0, static_cast<size_t>(N) * C * sizeof(T));
  layernorm_backward(dres, g.lnf_w, g.lnf_b, dln, x_last, p.lnf_w, lnf_mean, lnf_rstd, N, C);
}

// Gradients of the replicated tensors (LayerNorms, row-parallel biases) come out identical on
// every tp rank: they are computed from dres, which every rank holds identically after the
// all-reduces of dln, by the same deterministic kernels.
template <typename T>
void GPTModel<T>::Impl::block_backward(int l, bool weights) {
  const int N = B * Tn;
  const size_t NC = static_cast<size_t>(N) * C;
  const float pdrop = cfg.dropout;
  const BlockTensors<T>& w = p.blocks[l];
  const BlockTensors<T>& gw = g.blocks[l];
  const BlockActs<T>& a = blocks[l];
  const T* x = l > 0 ? resid_out[l - 1] : resid0;
  if (recompute == Recompute::kFull) block_forward(l, x, nullptr, /*redo=*/true);
  // Gradient reaching a residual branch's output: the stream gradient, through the dropout mask.
  auto branch_grad = [&](uint8_t* mask) -> const T* {
    if (!dropped) return dres;
    auto t = timed(Kernel::kDropout, true);
    dropout_backward(dbranch, dres, mask, pdrop, NC);
    return dbranch;
  };
  // A linear layer's backward: the input gradient always; the weight gradients now, or (split
  // backward) the output gradient kept in `keep` for backward_weights.
  auto linear = [&](T* dinp, T* dw, T* dbias, const T* dout, T* keep, const T* inp, const T* wt,
                    int IC, int OC) {
    if (weights) {
      linear_backward(dinp, dw, dbias, dout, inp, wt, N, IC, OC);
    } else {
      std::memcpy(keep, dout, static_cast<size_t>(N) * OC * sizeof(T));
      linear_backward<T>(dinp, nullptr, nullptr, dout, inp, wt, N, IC, OC);
    }
  };
  {
    const T* dout = branch_grad(a.mlp_mask);
    auto t = timed(Kernel::kMatmulMLPProj, true);
    linear(dfc, gw.mlp_w, gw.mlp_b, dout, a.d_mlp, a.fc_gelu, w.mlp_w, Fl, C);
  }
  {
    auto t = timed(Kernel::kGelu, true);
    gelu_backward(dfc, a.fc, dfc, static_cast<size_t>(N) * Fl);
  }
  {
    auto t = timed(Kernel::kMatmulFC, true);
    linear(dln, gw.fc_w, gw.fc_b, dfc, a.d_fc, a.ln2, w.fc_w, C, Fl);
  }
  reduce(dln, NC);
  {
    auto t = timed(Kernel::kLayerNorm, true);
    layernorm_backward(dres, gw.ln2_w, gw.ln2_b, dln, a.mid, w.ln2_w, a.ln2_mean, a.ln2_rstd, N,
                       C);
  }
  {
    const T* dout = branch_grad(a.proj_mask);
    auto t = timed(Kernel::kMatmulAttnProj, true);
    linear(datty, gw.proj_w, gw.proj_b, dout, a.d_proj, a.atty, w.proj_w, Cl, C);
  }
  {
    auto t = timed(Kernel::kAttention, true);
    const AttentionShape shape{B, Tn, Cl, Hl};
    if (recompute == Recompute::kSelective) {
      // The probabilities again, from the kept q,k,v; the output goes to dqkv, overwritten next.
      attention_forward(dqkv, a.att, a.qkv, dropped ? a.att_mask : nullptr, pdrop, shape,
                        att_scratch, att_scratch_size);
    }
    attention_backward(dqkv, datty, a.qkv, a.att, dropped ? a.att_mask : nullptr, pdrop,
                       shape, att_scratch, att_scratch_size);
  }
  {
    auto t = timed(Kernel::kMatmulQKV, true);
    linear(dln, gw.qkv_w, gw.qkv_b, dqkv, a.d_qkv, a.ln1, w.qkv_w, C, 3 * Cl);
  }
  reduce(dln, NC);
  {
    auto t = timed(Kernel::kLayerNorm, true);
    layernorm_backward(dres, gw.ln1_w, gw.ln1_b, dln, x, w.ln1_w, a.ln1_mean, a.ln1_rstd, N, C);
  }
}

template <typename T>
GPTModel<T>::GPTModel(const GPTConfig& config, const ModelShard& shard, TensorParallelGroup* tp)
    : impl_(std::make_unique<Impl>(config, shard, tp)) {
  std::memset(impl_->params.data(), 0, impl_->n_params * sizeof(T));
  zero_grad();
}

template <typename T>
GPTModel<T>::~GPTModel() = default;

template <typename T>
const GPTConfig& GPTModel<T>::config() const { return impl_->cfg; }
template <typename T>
const ModelShard& GPTModel<T>::shard() const { return impl_->shard; }
template <typename T>
const std::vector<ParamInfo>& GPTModel<T>::layout() const { return impl_->layout; }
template <typename T>
size_t GPTModel<T>::num_params() const { return impl_->n_params; }
template <typename T>
T* GPTModel<T>::params() { return impl_->params.data(); }
template <typename T>
const T* GPTModel<T>::params() const { return impl_->params.data(); }
template <typename T>
T* GPTModel<T>::grads() { return impl_->grads.data(); }
template <typename T>
const T* GPTModel<T>::grads() const { return impl_->grads.data(); }
template <typename T>
const T* GPTModel<T>::logits() const { return impl_->logits; }
template <typename T>
int GPTModel<T>::local_vocab() const { return impl_->vocab.Vl; }
template <typename T>
void GPTModel<T>::set_profile(KernelProfile* profile) { impl_->profile = profile; }
template <typename T>
size_t GPTModel<T>::activation_bytes() const {
  return impl_->acts_buf.size() * sizeof(T) + impl_->mask_buf.size();
}
template <typename T>
void GPTModel<T>::set_recompute(Recompute mode) { impl_->recompute = mode; }
template <typename T>
Recompute GPTModel<T>::recompute() const { return impl_->recompute; }
template <typename T>
size_t GPTModel<T>::logits_bytes() const { return impl_->logits_elems * sizeof(T); }

template <typename T>
void GPTModel<T>::ActivationsDeleter::operator()(Activations* a) const {
  delete a;
}

template <typename T>
typename GPTModel<T>::ActivationsPtr GPTModel<T>::new_activations() {
  return ActivationsPtr(new Activations);
}

template <typename T>
void GPTModel<T>::swap_activations(Activations& other) {
  std::swap(static_cast<ActivationState<T>&>(*impl_), other.state);
}

template <typename T>
const T* GPTModel<T>::output() const {
  const Impl& m = *impl_;
  return m.last > m.first ? m.resid_out[m.last - m.first - 1] : m.resid0;
}

template <typename T>
const T* GPTModel<T>::input_grad() const {
  LOOM_CHECK(!impl_->shard.has_embedding && impl_->backward_done,
             "input_grad: only after the backward of a stage without the embedding");
  return impl_->dres;
}

template <typename T>
void GPTModel<T>::logits_row(int n, T* out) const {
  const Impl& m = *impl_;
  LOOM_CHECK(m.shard.has_head && n >= 0 && n < m.B * m.Tn, "logits_row: row ", n,
             " of the last forward does not exist");
  const T* row = m.logits + static_cast<size_t>(n) * m.vocab.Vl;
  if (!m.tp) {
    std::copy(row, row + m.cfg.vocab_size, out);
    return;
  }
  // Each whole-vocabulary column lives on one rank: the sum over ranks is a gather.
  std::fill(out, out + m.cfg.vocab_size, T(0));
  std::copy(row, row + m.vocab.valid, out + m.vocab.vocab_start);
  m.tp->allreduce_sum(out, m.cfg.vocab_size);
}

template <typename T>
void GPTModel<T>::init_weights(uint64_t seed) {
  Impl& m = *impl_;
  Rng rng(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * m.cfg.n_layer);
  std::map<std::string, const ParamInfo*> mine;
  for (const ParamInfo& info : m.layout) mine[info.name] = &info;
  std::vector<T> whole;
  // The whole model's tensors in order, so every shard draws the same stream.
  for (const ParamInfo& info : gpt_param_layout(m.cfg)) {
    const auto it = mine.find(info.name);
    const ParamInfo* local = it == mine.end() ? nullptr : it->second;
    const auto ends_with = [&](const std::string& s) {
      return info.name.size() >= s.size() &&
             info.name.compare(info.name.size() - s.size(), s.size(), s) == 0;
    };
    if (info.shape.size() >= 2) {
      const double std = ends_with("c_proj.weight") ? residual_std : 0.02;
      // Drawn straight into place when this rank holds the whole tensor.
      const bool in_place = local != nullptr && local->replicated();
      T* w = in_place ? m.params.data() + local->offset : (whole.resize(info.numel), whole.data());
      for (size_t i = 0; i < info.numel; ++i) w[i] = static_cast<T>(std * rng.normal());
      if (local != nullptr && !in_place) copy_from_whole(*local, whole.data(), m.params.data() + local->offset);
    } else if (local != nullptr) {
      // LayerNorm gains start at 1; biases (including LayerNorm biases) at 0.
      T* w = m.params.data() + local->offset;
      std::fill(w, w + local->numel, ends_with(".weight") ? T(1) : T(0));
    }
  }
}

template <typename T>
T GPTModel<T>::forward(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                       bool train, Rng* dropout_rng) {
  LOOM_CHECK(impl_->shard.has_embedding && tokens != nullptr,
             "forward: takes tokens on a stage with the embedding (forward_activation otherwise)");
  return impl_->forward(tokens, nullptr, targets, batch, seq, train, dropout_rng);
}

template <typename T>
T GPTModel<T>::forward_activation(const T* input, const int32_t* targets, int batch, int seq,
                                  bool train, Rng* dropout_rng) {
  LOOM_CHECK(!impl_->shard.has_embedding && input != nullptr,
             "forward_activation: takes an activation on a stage without the embedding");
  return impl_->forward(nullptr, input, targets, batch, seq, train, dropout_rng);
}

template <typename T>
void GPTModel<T>::backward(T loss_scale, const GradReadyFn& on_ready) {
  LOOM_CHECK(impl_->shard.has_head, "backward: a stage without the head takes its output's "
             "gradient (backward_from_output)");
  impl_->backward(loss_scale, nullptr, on_ready, /*weights=*/true);
}

template <typename T>
void GPTModel<T>::set_split_backward(bool split) {
  impl_->split = split;
}

template <typename T>
void GPTModel<T>::backward_input(T loss_scale, const T* doutput) {
  LOOM_CHECK(impl_->shard.has_head == (doutput == nullptr),
             "backward_input: the output's gradient is given exactly on stages without the head");
  impl_->backward(loss_scale, doutput, {}, /*weights=*/false);
}

template <typename T>
void GPTModel<T>::backward_weights() {
  impl_->backward_weights();
}

template <typename T>
void GPTModel<T>::backward_from_output(const T* doutput, const GradReadyFn& on_ready) {
  LOOM_CHECK(!impl_->shard.has_head && doutput != nullptr,
             "backward_from_output: for a stage without the head, given its output's gradient");
  impl_->backward(T(1), doutput, on_ready, /*weights=*/true);
}

template <typename T>
void GPTModel<T>::zero_grad() {
  T* gp = impl_->grads.data();
  const size_t n = impl_->n_params;
#pragma omp parallel for schedule(static) if (kernels::worth_threads(n))
  for (size_t i = 0; i < n; ++i) gp[i] = T(0);
}

template class GPTModel<float>;
template class GPTModel<double>;

}  // namespace loom
