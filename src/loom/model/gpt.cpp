#include "loom/model/gpt.hpp"

#include <cstring>

#include "loom/model/gpt_impl.hpp"

namespace loom {

template <typename T>
T GPTModel<T>::Impl::forward(const int32_t* tok, const T* input, const int32_t* tgt, int batch,
                             int seq, bool train, Rng* rng, int64_t first_sample) {
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
  LOOM_CHECK(first_sample >= 0, "forward: first_sample must be >= 0, got ", first_sample);
  if (dropped) {
    drop_key = rng->next_u64();
    drop_first_sample = first_sample;
  }
  if (tok != nullptr) check_tokens(tok, N, cfg.vocab_size, "tokens");
  have_targets = tgt != nullptr && with_head;
  if (have_targets) check_tokens(tgt, N, cfg.vocab_size, "targets");
  B = batch;
  Tn = seq;
  ensure_capacity();
  backward_done = false;
  if (tok != nullptr) tokens.assign(tok, tok + N);
  if (have_targets) targets.assign(tgt, tgt + N);
  if (tok != nullptr)
    embed(tok);
  else
    std::memcpy(resid0, input, static_cast<size_t>(N) * C * sizeof(T));
  const T* x = resid0;
  for (int l = 0; l < hi - lo; ++l) {
    // Trace: one event per block (named like the backward's "backward h.<l>" events).
    const double block_start = trace::enabled() ? trace::now_us() : -1;
    block_forward(l, x);
    if (block_start >= 0)
      trace::complete("forward h." + std::to_string(block_id[lo + l]), "compute", block_start);
    x = resid_out[l];
  }
  return with_head ? head_forward() : T(0);
}

template <typename T>
void GPTModel<T>::Impl::draw_masks(uint8_t* mask, int layer, DropSite site, int heads,
                                   size_t per_head) {
  auto t = timed(Kernel::kDropout, false);
  const int head0 = site == DropSite::kAttention ? shard.tp_rank * heads : 0;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < heads; ++h) {
      // The fields packed into one word (sample < 2^32, layer + 1 < 2^16, site < 2^4, head <
      // 2^12), xored into the key: distinct words seed independent streams.
      const uint64_t word = static_cast<uint64_t>(drop_first_sample + b) << 32 |
                            static_cast<uint64_t>(layer + 1) << 16 |
                            static_cast<uint64_t>(site) << 12 | static_cast<uint64_t>(head0 + h);
      dropout_mask(mask + (static_cast<size_t>(b) * heads + h) * per_head, per_head, cfg.dropout,
                   Rng(drop_key ^ word).next_u64());
    }
}

template <typename T>
void GPTModel<T>::Impl::embed(const int32_t* tok) {
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
    draw_masks(emb_mask, -1, DropSite::kEmbedding, 1, static_cast<size_t>(Tn) * C);
    auto t = timed(Kernel::kDropout, false);
    dropout_forward(resid0, resid0, emb_mask, cfg.dropout, NC);
  }
}

template <typename T>
void GPTModel<T>::Impl::block_forward(int l, const T* x, bool redo) {
  const int N = B * Tn;
  const size_t NC = static_cast<size_t>(N) * C;
  const float pdrop = cfg.dropout;
  const BlockTensors<T>& w = p.blocks[lo + l];
  BlockActs<T>& a = blocks[l];
  const int layer = block_id[lo + l];
  // Residual-branch dropout: x_out = x_in + dropout(branch), with the branch in dbranch (free
  // during the forward). The masks are replicated over the tp ranks.
  auto add_branch = [&](T* out, const T* in, T* branch, uint8_t* mask, DropSite site) {
    if (dropped) {
      if (!redo) draw_masks(mask, layer, site, 1, static_cast<size_t>(Tn) * C);
      auto t = timed(Kernel::kDropout, false);
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
  uint8_t* att_mask = dropped ? a.att_mask : nullptr;
  // Each tp rank drops in its own heads, with the masks of those heads at tp 1.
  if (dropped && !redo)
    draw_masks(att_mask, layer, DropSite::kAttention, Hl, static_cast<size_t>(Tn) * Tn);
  {
    auto t = timed(Kernel::kAttention, false);
    attention_forward(a.atty, a.att, a.qkv, att_mask, pdrop, AttentionShape{B, Tn, Cl, Hl},
                      att_scratch, att_scratch_size);
  }
  {
    auto t = timed(Kernel::kMatmulAttnProj, false);
    linear_forward(dbranch, a.atty, w.proj_w, add_bias ? w.proj_b : nullptr, N, Cl, C);
  }
  reduce(dbranch, NC);
  add_branch(a.mid, x, dbranch, a.proj_mask, DropSite::kAttentionProj);
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
  add_branch(resid_out[l], a.mid, dbranch, a.mlp_mask, DropSite::kMlpProj);
}

template <typename T>
T GPTModel<T>::Impl::head_forward() {
  const int N = B * Tn;
  const T* x = hi > lo ? resid_out[hi - lo - 1] : resid0;
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
  return impl_->bytes() + impl_->shared_bytes();
}
template <typename T>
size_t GPTModel<T>::set_bytes() const { return impl_->bytes(); }
template <typename T>
size_t GPTModel<T>::set_bytes(const Activations& set) { return set.state.bytes(); }
template <typename T>
size_t GPTModel<T>::shared_activation_bytes() const { return impl_->shared_bytes(); }
template <typename T>
size_t GPTModel<T>::activation_allocations() const { return impl_->allocations; }
template <typename T>
void GPTModel<T>::set_recompute(Recompute mode) { impl_->recompute = mode; }
template <typename T>
Recompute GPTModel<T>::recompute() const { return impl_->recompute; }
template <typename T>
size_t GPTModel<T>::logits_bytes() const {
  return carved_elems(impl_->logits_elems) * sizeof(T);
}
template <typename T>
void GPTModel<T>::set_chunk(int chunk) { impl_->select_chunk(chunk); }
template <typename T>
int GPTModel<T>::chunk() const { return impl_->chunk; }

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
  return m.hi > m.lo ? m.resid_out[m.hi - m.lo - 1] : m.resid0;
}

template <typename T>
const T* GPTModel<T>::input_grad() const {
  LOOM_CHECK(!impl_->with_embedding && impl_->backward_done,
             "input_grad: only after the backward of a stage (chunk) without the embedding");
  return impl_->dres;
}

template <typename T>
void GPTModel<T>::logits_row(int n, T* out) const {
  const Impl& m = *impl_;
  LOOM_CHECK(m.with_head && n >= 0 && n < m.B * m.Tn && m.logits != nullptr, "logits_row: row ",
             n, " of the last forward does not exist (or a split backward has released it)");
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
                       bool train, Rng* dropout_rng, int64_t first_sample) {
  LOOM_CHECK(impl_->with_embedding && tokens != nullptr,
             "forward: takes tokens on a stage with the embedding (forward_activation otherwise)");
  return impl_->forward(tokens, nullptr, targets, batch, seq, train, dropout_rng, first_sample);
}

template <typename T>
T GPTModel<T>::forward_activation(const T* input, const int32_t* targets, int batch, int seq,
                                  bool train, Rng* dropout_rng, int64_t first_sample) {
  LOOM_CHECK(!impl_->with_embedding && input != nullptr,
             "forward_activation: takes an activation on a stage without the embedding");
  return impl_->forward(nullptr, input, targets, batch, seq, train, dropout_rng, first_sample);
}

template <typename T>
void GPTModel<T>::backward(T loss_scale, const GradReadyFn& on_ready) {
  LOOM_CHECK(impl_->with_head, "backward: a stage without the head takes its output's "
             "gradient (backward_from_output)");
  impl_->backward(loss_scale, nullptr, on_ready, /*weights=*/true);
}

template <typename T>
void GPTModel<T>::set_split_backward(bool split) {
  impl_->split = split;
}

template <typename T>
void GPTModel<T>::backward_input(T loss_scale, const T* doutput) {
  LOOM_CHECK(impl_->with_head == (doutput == nullptr),
             "backward_input: the output's gradient is given exactly on stages without the head");
  impl_->backward(loss_scale, doutput, {}, /*weights=*/false);
}

template <typename T>
void GPTModel<T>::backward_weights() {
  impl_->backward_weights();
}

template <typename T>
void GPTModel<T>::backward_from_output(const T* doutput, const GradReadyFn& on_ready) {
  LOOM_CHECK(!impl_->with_head && doutput != nullptr,
             "backward_from_output: for a stage without the head, given its output's gradient");
  impl_->backward(T(1), doutput, on_ready, /*weights=*/true);
}

namespace {

template <typename T>
void zero_floats(T* gp, size_t n) {
#pragma omp parallel for schedule(static) if (kernels::worth_threads(n))
  for (size_t i = 0; i < n; ++i) gp[i] = T(0);
}

}  // namespace

template <typename T>
void GPTModel<T>::zero_grad() {
  Impl& m = *impl_;
  if (m.grads.size() > 0) {
    zero_floats(m.grads.data(), m.n_params);
    return;
  }
  for (size_t i = 0; i < m.layout.size(); ++i) zero_floats(m.grad_storage[i], m.layout[i].numel);
}

template <typename T>
void GPTModel<T>::bind_gradients(const std::vector<T*>& storage) {
  Impl& m = *impl_;
  LOOM_CHECK(storage.size() == m.layout.size(), "bind_gradients: ", storage.size(),
             " pointers for the ", m.layout.size(), " tensors of the layout");
  for (size_t i = 0; i < storage.size(); ++i)
    LOOM_CHECK(storage[i] != nullptr, "bind_gradients: no storage for ", m.layout[i].name);
  m.grad_storage = storage;
  m.g = bind_tensors(m.grad_storage, m.layout, m.block_id);
  m.grads.resize(0);
}

template class GPTModel<float>;
template class GPTModel<double>;

}  // namespace loom
