#include "loom/model/gpt.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "loom/core/aligned_buffer.hpp"
#include "loom/core/check.hpp"
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
#include "loom/model/kernel_profile.hpp"

namespace loom {

using namespace kernels;

namespace {

// Pointers to one block's tensors inside a flat buffer (parameters or gradients).
template <typename T>
struct BlockTensors {
  T *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *mlp_w,
      *mlp_b;
};

template <typename T>
struct ModelTensors {
  T *wte, *wpe, *lnf_w, *lnf_b;
  std::vector<BlockTensors<T>> blocks;
};

template <typename T>
ModelTensors<T> bind_tensors(T* base, const std::vector<ParamInfo>& layout, int n_layer) {
  std::map<std::string, T*> at;
  for (const auto& p : layout) at[p.name] = base + p.offset;
  auto get = [&](const std::string& name) -> T* {
    auto it = at.find(name);
    return it == at.end() ? nullptr : it->second;
  };
  ModelTensors<T> m;
  m.wte = get("transformer.wte.weight");
  m.wpe = get("transformer.wpe.weight");
  m.lnf_w = get("transformer.ln_f.weight");
  m.lnf_b = get("transformer.ln_f.bias");
  for (int l = 0; l < n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    m.blocks.push_back({get(h + "ln_1.weight"), get(h + "ln_1.bias"), get(h + "attn.c_attn.weight"),
                        get(h + "attn.c_attn.bias"), get(h + "attn.c_proj.weight"),
                        get(h + "attn.c_proj.bias"), get(h + "ln_2.weight"), get(h + "ln_2.bias"),
                        get(h + "mlp.c_fc.weight"), get(h + "mlp.c_fc.bias"),
                        get(h + "mlp.c_proj.weight"), get(h + "mlp.c_proj.bias")});
  }
  return m;
}

// Activations of one block kept for the backward.
template <typename T>
struct BlockActs {
  T *ln1, *ln1_mean, *ln1_rstd;  // ln_1 output (N, C) and its statistics (N)
  T* qkv;                        // (N, 3C)
  T* att;                        // (B, H, T, T) attention probabilities
  T* atty;                       // (N, C) attention output before c_proj
  T* mid;                        // (N, C) residual stream after the attention branch
  T *ln2, *ln2_mean, *ln2_rstd;
  T* fc;                         // (N, 4C) c_fc output (GELU input)
  T* fc_gelu;                    // (N, 4C)
  uint8_t *att_mask, *proj_mask, *mlp_mask;  // dropout masks (nullptr without dropout)
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

}  // namespace

template <typename T>
struct GPTModel<T>::Impl {
  GPTConfig cfg;
  std::vector<ParamInfo> layout;
  size_t n_params = 0;
  AlignedBuffer<T> params, grads;
  ModelTensors<T> p, g;  // views into params and grads
  KernelProfile* profile = nullptr;

  // Capacity the activation buffers were planned for: rows (B*T), B*T*T and T.
  size_t cap_rows = 0, cap_rows_t = 0, cap_t = 0;
  int threads = 0;
  AlignedBuffer<T> acts_buf;
  AlignedBuffer<uint8_t> mask_buf;
  std::vector<BlockActs<T>> blocks;
  T *resid0, *lnf, *lnf_mean, *lnf_rstd, *logits, *losses, *lse;  // resid0: embeddings (N, C)
  std::vector<T*> resid_out;                                      // block l's output (N, C)
  uint8_t* emb_mask = nullptr;
  // Backward scratch, shared by all blocks.
  T *dres, *dln, *dqkv, *datty, *dfc, *dbranch, *att_scratch;
  size_t att_scratch_size = 0;

  // Last forward.
  int B = 0, Tn = 0;
  bool have_targets = false, dropped = false, backward_done = false;
  std::vector<int32_t> tokens, targets;

  explicit Impl(const GPTConfig& c) : cfg(c) {
    cfg.validate();
    layout = gpt_param_layout(cfg);
    n_params = layout.back().offset + layout.back().numel;
    params.resize(n_params);
    grads.resize(n_params);
    p = bind_tensors(params.data(), layout, cfg.n_layer);
    g = bind_tensors(grads.data(), layout, cfg.n_layer);
  }

  // Lays out all activations for N rows, N*T attention rows and sequence length T. Called with
  // base pointers == nullptr to measure, then again to assign.
  size_t plan(T* base, uint8_t* mbase, size_t* mask_elems, size_t N, size_t NT, size_t Tmax,
              int nthreads) {
    const size_t C = cfg.d_model, H = cfg.n_head, V = cfg.vocab_size;
    const bool drop = cfg.dropout > 0;
    Carver<T> a{base};
    Carver<uint8_t> m{mbase};
    resid0 = a.take(N * C);
    emb_mask = drop ? m.take(N * C) : nullptr;
    blocks.assign(cfg.n_layer, {});
    resid_out.assign(cfg.n_layer, nullptr);
    for (int l = 0; l < cfg.n_layer; ++l) {
      BlockActs<T>& b = blocks[l];
      b.ln1 = a.take(N * C);
      b.ln1_mean = a.take(N);
      b.ln1_rstd = a.take(N);
      b.qkv = a.take(N * 3 * C);
      b.att = a.take(NT * H);
      b.atty = a.take(N * C);
      b.mid = a.take(N * C);
      b.ln2 = a.take(N * C);
      b.ln2_mean = a.take(N);
      b.ln2_rstd = a.take(N);
      b.fc = a.take(N * 4 * C);
      b.fc_gelu = a.take(N * 4 * C);
      resid_out[l] = a.take(N * C);
      b.att_mask = drop ? m.take(NT * H) : nullptr;
      b.proj_mask = drop ? m.take(N * C) : nullptr;
      b.mlp_mask = drop ? m.take(N * C) : nullptr;
    }
    lnf = a.take(N * C);
    lnf_mean = a.take(N);
    lnf_rstd = a.take(N);
    logits = a.take(N * V);
    losses = a.take(N);
    lse = a.take(N);
    dres = a.take(N * C);
    dln = a.take(N * C);
    dqkv = a.take(N * 3 * C);
    datty = a.take(N * C);
    dfc = a.take(N * 4 * C);
    dbranch = a.take(N * C);
    att_scratch_size =
        attention_scratch_size({1, static_cast<int>(Tmax), cfg.d_model, cfg.n_head}, nthreads);
    att_scratch = a.take(att_scratch_size);
    *mask_elems = m.used;
    return a.used;
  }

  void ensure_capacity(int batch, int seq) {
    const size_t N = static_cast<size_t>(batch) * seq, NT = N * seq;
    const int nthreads = omp_get_max_threads();
    if (N <= cap_rows && NT <= cap_rows_t && static_cast<size_t>(seq) <= cap_t &&
        nthreads <= threads) {
      return;
    }
    cap_rows = std::max(cap_rows, N);
    cap_rows_t = std::max(cap_rows_t, NT);
    cap_t = std::max(cap_t, static_cast<size_t>(seq));
    threads = std::max(threads, nthreads);
    size_t mask_elems = 0;
    const size_t elems = plan(nullptr, nullptr, &mask_elems, cap_rows, cap_rows_t, cap_t, threads);
    acts_buf.resize(elems);
    mask_buf.resize(mask_elems);
    plan(acts_buf.data(), mask_buf.data(), &mask_elems, cap_rows, cap_rows_t, cap_t, threads);
  }

  ProfileScope timed(Kernel k, bool backward) const { return ProfileScope(profile, k, backward); }

  T forward(const int32_t* tok, const int32_t* tgt, int batch, int seq, bool train, Rng* rng);
  void backward(T loss_scale, const GradReadyFn& on_ready);
};

template <typename T>
T GPTModel<T>::Impl::forward(const int32_t* tok, const int32_t* tgt, int batch, int seq,
                             bool train, Rng* rng) {
  LOOM_CHECK(batch > 0, "forward: batch must be > 0, got ", batch);
  LOOM_CHECK(seq > 0 && seq <= cfg.context_len, "forward: sequence length ", seq,
             " must be in [1, context_len = ", cfg.context_len, "]");
  const int C = cfg.d_model, V = cfg.vocab_size, N = batch * seq;
  const float pdrop = cfg.dropout;
  dropped = train && pdrop > 0;
  LOOM_CHECK(!dropped || rng != nullptr, "forward: dropout ", pdrop,
             " in training needs a dropout_rng");
  check_tokens(tok, N, V, "tokens");
  if (tgt != nullptr) check_tokens(tgt, N, V, "targets");
  ensure_capacity(batch, seq);
  B = batch;
  Tn = seq;
  tokens.assign(tok, tok + N);
  have_targets = tgt != nullptr;
  backward_done = false;
  if (have_targets) targets.assign(tgt, tgt + N);
  const size_t NC = static_cast<size_t>(N) * C;

  // Residual-branch dropout: x_out = x_in + dropout(branch), with the branch in dbranch (free
  // during the forward).
  auto add_branch = [&](T* out, const T* in, T* branch, uint8_t* mask) {
    if (dropped) {
      auto t = timed(Kernel::kDropout, false);
      dropout_mask(mask, NC, pdrop, rng->next_u64());
      dropout_forward(branch, branch, mask, pdrop, NC);
    }
    auto t = timed(Kernel::kResidual, false);
    residual_forward(out, in, branch, NC);
  };

  {
    auto t = timed(Kernel::kEmbedding, false);
    embedding_forward(resid0, tok, p.wte, p.wpe, B, Tn, C);
  }
  if (dropped) {
    auto t = timed(Kernel::kDropout, false);
    dropout_mask(emb_mask, NC, pdrop, rng->next_u64());
    dropout_forward(resid0, resid0, emb_mask, pdrop, NC);
  }
  const AttentionShape shape{B, Tn, C, cfg.n_head};
  const T* x = resid0;
  for (int l = 0; l < cfg.n_layer; ++l) {
    const BlockTensors<T>& w = p.blocks[l];
    BlockActs<T>& a = blocks[l];
    {
      auto t = timed(Kernel::kLayerNorm, false);
      layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, w.ln1_w, w.ln1_b, N, C);
    }
    {
      auto t = timed(Kernel::kMatmulQKV, false);
      linear_forward(a.qkv, a.ln1, w.qkv_w, w.qkv_b, N, C, 3 * C);
    }
    {
      auto t = timed(Kernel::kAttention, false);
      uint8_t* mask = nullptr;
      if (dropped) {
        mask = a.att_mask;
        dropout_mask(mask, static_cast<size_t>(N) * Tn * cfg.n_head, pdrop, rng->next_u64());
      }
      attention_forward(a.atty, a.att, a.qkv, mask, pdrop, shape, att_scratch, att_scratch_size);
    }
    {
      auto t = timed(Kernel::kMatmulAttnProj, false);
      linear_forward(dbranch, a.atty, w.proj_w, w.proj_b, N, C, C);
    }
    add_branch(a.mid, x, dbranch, a.proj_mask);
    {
      auto t = timed(Kernel::kLayerNorm, false);
      layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, w.ln2_w, w.ln2_b, N, C);
    }
    {
      auto t = timed(Kernel::kMatmulFC, false);
      linear_forward(a.fc, a.ln2, w.fc_w, w.fc_b, N, C, 4 * C);
    }
    {
      auto t = timed(Kernel::kGelu, false);
      gelu_forward(a.fc_gelu, a.fc, static_cast<size_t>(N) * 4 * C);
    }
    {
      auto t = timed(Kernel::kMatmulMLPProj, false);
      linear_forward(dbranch, a.fc_gelu, w.mlp_w, w.mlp_b, N, 4 * C, C);
    }
    add_branch(resid_out[l], a.mid, dbranch, a.mlp_mask);
    x = resid_out[l];
  }
  {
    auto t = timed(Kernel::kLayerNorm, false);
    layernorm_forward(lnf, lnf_mean, lnf_rstd, x, p.lnf_w, p.lnf_b, N, C);
  }
  {
    auto t = timed(Kernel::kLMHead, false);
    lm_head_forward(logits, lnf, p.wte, N, C, V);
  }
  if (!have_targets) return T(0);
  auto t = timed(Kernel::kSoftmaxCE, false);
  softmax_ce_forward(losses, lse, logits, targets.data(), N, V);
  double sum = 0;
  for (int n = 0; n < N; ++n) sum += losses[n];
  return static_cast<T>(sum / N);
}

template <typename T>
void GPTModel<T>::Impl::backward(T loss_scale, const GradReadyFn& on_ready) {
  LOOM_CHECK(have_targets, "backward: the last forward had no targets");
  LOOM_CHECK(!backward_done, "backward: already run for the last forward (it turns the logits "
             "into their gradient in place); run forward again");
  backward_done = true;
  const int C = cfg.d_model, V = cfg.vocab_size, N = B * Tn;
  const size_t NC = static_cast<size_t>(N) * C;
  const float pdrop = cfg.dropout;
  auto ready = [&](const ParamInfo& first, const ParamInfo& last) {
    if (on_ready) on_ready(first.offset, last.offset + last.numel);
  };
  // Gradient reaching a residual branch's output: the stream gradient, through the dropout mask.
  auto branch_grad = [&](uint8_t* mask) -> const T* {
    if (!dropped) return dres;
    auto t = timed(Kernel::kDropout, true);
    dropout_backward(dbranch, dres, mask, pdrop, NC);
    return dbranch;
  };

  {
    auto t = timed(Kernel::kSoftmaxCE, true);
    softmax_ce_backward(logits, logits, lse, targets.data(), loss_scale / T(N), N, V);
  }
  {
    auto t = timed(Kernel::kLMHead, true);
    lm_head_backward(dln, g.wte, logits, lnf, p.wte, N, C, V);
  }
  const T* x_last = cfg.n_layer > 0 ? resid_out[cfg.n_layer - 1] : resid0;
  {
    auto t = timed(Kernel::kLayerNorm, true);
    std::memset(dres, 0, NC * sizeof(T));
    layernorm_backward(dres, g.lnf_w, g.lnf_b, dln, x_last, p.lnf_w, lnf_mean, lnf_rstd, N, C);
  }
  ready(layout[layout.size() - 2], layout.back());

  const AttentionShape shape{B, Tn, C, cfg.n_head};
  // Each block's parameters are contiguous in the layout: entries [first, first + per_block).
  const size_t per_block = (layout.size() - 4) / cfg.n_layer;
  for (int l = cfg.n_layer - 1; l >= 0; --l) {
    const BlockTensors<T>& w = p.blocks[l];
    const BlockTensors<T>& gw = g.blocks[l];
    const BlockActs<T>& a = blocks[l];
    const T* x = l > 0 ? resid_out[l - 1] : resid0;
    {
      const T* dout = branch_grad(a.mlp_mask);
      auto t = timed(Kernel::kMatmulMLPProj, true);
      linear_backward(dfc, gw.mlp_w, gw.mlp_b, dout, a.fc_gelu, w.mlp_w, N, 4 * C, C);
    }
    {
      auto t = timed(Kernel::kGelu, true);
      gelu_backward(dfc, a.fc, dfc, static_cast<size_t>(N) * 4 * C);
    }
    {
      auto t = timed(Kernel::kMatmulFC, true);
      linear_backward(dln, gw.fc_w, gw.fc_b, dfc, a.ln2, w.fc_w, N, C, 4 * C);
    }
    {
      auto t = timed(Kernel::kLayerNorm, true);
      layernorm_backward(dres, gw.ln2_w, gw.ln2_b, dln, a.mid, w.ln2_w, a.ln2_mean, a.ln2_rstd, N,
                         C);
    }
    {
      const T* dout = branch_grad(a.proj_mask);
      auto t = timed(Kernel::kMatmulAttnProj, true);
      linear_backward(datty, gw.proj_w, gw.proj_b, dout, a.atty, w.proj_w, N, C, C);
    }
    {
      auto t = timed(Kernel::kAttention, true);
      attention_backward(dqkv, datty, a.qkv, a.att, dropped ? a.att_mask : nullptr, pdrop, shape,
                         att_scratch, att_scratch_size);
    }
    {
      auto t = timed(Kernel::kMatmulQKV, true);
      linear_backward(dln, gw.qkv_w, gw.qkv_b, dqkv, a.ln1, w.qkv_w, N, C, 3 * C);
    }
    {
      auto t = timed(Kernel::kLayerNorm, true);
      layernorm_backward(dres, gw.ln1_w, gw.ln1_b, dln, x, w.ln1_w, a.ln1_mean, a.ln1_rstd, N, C);
    }
    const size_t first = 2 + l * per_block;
    ready(layout[first], layout[first + per_block - 1]);
  }
  if (dropped) {
    auto t = timed(Kernel::kDropout, true);
    dropout_backward(dres, dres, emb_mask, pdrop, NC);
  }
  {
    auto t = timed(Kernel::kEmbedding, true);
    embedding_backward(g.wte, g.wpe, dres, tokens.data(), B, Tn, C);
  }
  ready(layout[0], layout[1]);
}

template <typename T>
GPTModel<T>::GPTModel(const GPTConfig& config) : impl_(std::make_unique<Impl>(config)) {
  std::memset(impl_->params.data(), 0, impl_->n_params * sizeof(T));
  zero_grad();
}

template <typename T>
GPTModel<T>::~GPTModel() = default;

template <typename T>
const GPTConfig& GPTModel<T>::config() const { return impl_->cfg; }
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
void GPTModel<T>::set_profile(KernelProfile* profile) { impl_->profile = profile; }

template <typename T>
void GPTModel<T>::init_weights(uint64_t seed) {
  Rng rng(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * impl_->cfg.n_layer);
  for (const ParamInfo& info : impl_->layout) {
    T* w = impl_->params.data() + info.offset;
    const auto ends_with = [&](const std::string& s) {
      return info.name.size() >= s.size() &&
             info.name.compare(info.name.size() - s.size(), s.size(), s) == 0;
    };
    if (info.shape.size() >= 2) {
      const double std = ends_with("c_proj.weight") ? residual_std : 0.02;
      for (size_t i = 0; i < info.numel; ++i) w[i] = static_cast<T>(std * rng.normal());
    } else {
      // LayerNorm gains start at 1; biases (including LayerNorm biases) at 0.
      const bool gain = ends_with(".weight");
      std::fill(w, w + info.numel, gain ? T(1) : T(0));
    }
  }
}

template <typename T>
T GPTModel<T>::forward(const int32_t* tokens, const int32_t* targets, int batch, int seq,
                       bool train, Rng* dropout_rng) {
  return impl_->forward(tokens, targets, batch, seq, train, dropout_rng);
}

template <typename T>
void GPTModel<T>::backward(T loss_scale, const GradReadyFn& on_ready) {
  impl_->backward(loss_scale, on_ready);
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
