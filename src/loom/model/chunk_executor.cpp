// ChunkExecutor: construction, the planning of activation sets and the public calls.
#include "loom/model/chunk_executor_impl.hpp"

#include <algorithm>

#include "loom/kernels/cpu/attention.hpp"

namespace loom {

using namespace gpt_internal;

template <typename T>
ChunkExecutor<T>::Impl::Impl(typename GPTModel<T>::Impl& weights, BackwardScratch<T>& scratch,
                             const ExecutorOptions& o)
    : m(weights), ws(scratch), opt(o) {
  const int chunks = m.shard.num_chunks();
  LOOM_CHECK(opt.chunk >= 0 && opt.chunk < chunks, "ChunkExecutor: chunk ", opt.chunk,
             " of a model with ", chunks, " chunks");
  LOOM_CHECK(!(opt.split_backward && opt.recompute == Recompute::kFull),
             "recompute full cannot run with the split backward (zero-bubble schedules): "
             "backward_weights needs every block's layer inputs, which full recomputation does "
             "not keep; use recompute selective or none");
  lo = m.chunk_begin[opt.chunk];
  hi = m.chunk_begin[opt.chunk + 1];
  with_embedding = opt.chunk == 0 && m.shard.has_embedding;
  with_head = opt.chunk + 1 == chunks && m.shard.has_head;
}

template <typename T>
typename ChunkExecutor<T>::Impl::Carved ChunkExecutor<T>::Impl::carve(S& s, T* kept_base,
                                                                      T* b_base,
                                                                      uint8_t* mask_base) const {
  const size_t N = static_cast<size_t>(s.B) * s.Tn, NT = N * s.Tn;
  const int C = m.C, Cl = m.Cl, Hl = m.Hl, Fl = m.Fl;
  const bool drop = m.cfg.dropout > 0;
  Carver<T> k{kept_base}, a{b_base};
  Carver<uint8_t> mk{mask_base};
  s.resid0 = a.take(N * C);
  s.emb_mask = drop && with_embedding ? mk.take(N * C) : nullptr;
  // A block's recomputable activations, the linear layers' inputs and outputs from `lin`; att is
  // taken only when not shared (shared_att is nullptr in the measuring pass too, hence the flag).
  const bool selective = opt.recompute == Recompute::kSelective;
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
  if (opt.recompute == Recompute::kFull) take_block(shared, a, nullptr);
  T* shared_att = selective ? a.take(NT * Hl) : nullptr;
  s.blocks.assign(hi - lo, {});
  s.resid_out.assign(hi - lo, nullptr);
  s.moe.resize(hi - lo);  // keeps the buffers of earlier forwards
  s.moe_stats.resize(hi - lo);
  for (int l = 0; l < hi - lo; ++l) {
    BlockActs<T>& b = s.blocks[l];
    if (opt.recompute == Recompute::kFull)
      b = shared;
    else
      take_block(b, k, shared_att);
    s.resid_out[l] = k.take(N * C);
    b.att_mask = drop ? mk.take(NT * Hl) : nullptr;
    b.proj_mask = drop ? mk.take(N * C) : nullptr;
    b.mlp_mask = drop ? mk.take(N * C) : nullptr;
    b.d_qkv = b.d_proj = b.d_fc = b.d_mlp = nullptr;
    const bool moe = m.cfg.is_moe_block(m.block_id[lo + l]);
    b.moe = moe ? &s.moe[l] : nullptr;
    b.moe_stats = moe ? &s.moe_stats[l] : nullptr;
    if (opt.split_backward) {
      // B reads qkv last in the attention's backward, mid in ln_2's, fc in the GELU's, and
      // resid_out[l] not at all (block l + 1's backward, before it, was its last reader).
      b.d_qkv = b.qkv;
      b.d_proj = b.mid;
      b.d_fc = b.fc;
      b.d_mlp = s.resid_out[l];
    }
  }
  s.lnf = s.lnf_mean = s.lnf_rstd = s.logits = s.losses = s.lse = s.ce_stats = nullptr;
  s.logits_elems = 0;
  if (with_head) {
    s.lnf = a.take(N * C);
    s.lnf_mean = a.take(N);
    s.lnf_rstd = a.take(N);
    s.logits_elems = N * m.vocab.Vl;
    s.logits = a.take(s.logits_elems);
    s.losses = a.take(N);
    s.lse = a.take(N);
    if (m.tp) s.ce_stats = a.take(3 * N);
  }
  return {k.used, a.used, mk.used};
}

template <typename T>
ActivationBytes ChunkExecutor<T>::Impl::plan(int batch, int seq) const {
  ActivationShape shape;
  shape.blocks = hi - lo;
  shape.first_block = m.block_id.empty() ? 0 : m.block_id[lo];
  shape.embedding = with_embedding;
  shape.head = with_head;
  shape.tp = m.shard.tp_size;
  shape.batch = batch;
  shape.seq = seq;
  shape.recompute = opt.recompute;
  shape.split_backward = opt.split_backward;
  shape.threads = omp_get_max_threads();
  shape.elem_bytes = sizeof(T);
  return activation_plan(m.cfg, shape);
}

template <typename T>
void ChunkExecutor<T>::Impl::ensure_capacity(S& s) {
  const bool mode_changed = s.planned_recompute != opt.recompute;
  s.planned_split = opt.split_backward;
  s.planned_recompute = opt.recompute;
  s.planned_chunk = opt.chunk;
  const ActivationBytes want = plan(s.B, s.Tn);
  fit(s.kept_buf, want.kept() / sizeof(T), mode_changed);
  if (!s.b_only) {
    if (pool.empty()) {
      s.b_only = std::make_unique<BOnlyBuffers<T>>();
    } else {
      s.b_only = std::move(pool.back());
      pool.pop_back();
    }
  }
  fit(s.b_only->acts, want.b_only() / sizeof(T), mode_changed);
  fit(s.b_only->masks, want.masks(), mode_changed);
  const Carved c = carve(s, s.kept_buf.data(), s.b_only->acts.data(), s.b_only->masks.data());
  LOOM_CHECK(c.kept * sizeof(T) == want.kept() && c.b_only * sizeof(T) == want.b_only() &&
                 c.masks == want.masks(),
             "ChunkExecutor: the activations carved (kept ", c.kept * sizeof(T), ", B-only ",
             c.b_only * sizeof(T), ", masks ", c.masks, " bytes) differ from activation_plan's (",
             want.kept(), ", ", want.b_only(), ", ", want.masks(), ")");
  ensure_scratch(s);
}

template <typename T>
void ChunkExecutor<T>::Impl::ensure_scratch(const S& s) {
  const int nthreads = omp_get_max_threads();
  const size_t want = plan(s.B, s.Tn).scratch / sizeof(T);
  fit(ws.buf, want, false);
  const size_t N = static_cast<size_t>(s.B) * s.Tn;
  Carver<T> a{ws.buf.data()};
  ws.dres = a.take(N * m.C);
  ws.dln = a.take(N * m.C);
  ws.dqkv = a.take(N * 3 * m.Cl);
  ws.datty = a.take(N * m.Cl);
  ws.dfc = a.take(N * m.Fl);
  ws.dbranch = a.take(N * m.C);
  ws.att_scratch_size = kernels::attention_scratch_size({1, s.Tn, m.Cl, m.Hl}, nthreads);
  ws.att_scratch = a.take(ws.att_scratch_size);
  LOOM_CHECK(a.used == want, "ChunkExecutor: the scratch carved (", a.used * sizeof(T),
             " bytes) differs from activation_plan's (", want * sizeof(T), ")");
}

template <typename T>
void ChunkExecutor<T>::Impl::release_b_only(S& s) {
  pool.push_back(std::move(s.b_only));
  carve(s, s.kept_buf.data(), nullptr, nullptr);
}

template <typename T>
BlockPass<T> ChunkExecutor<T>::Impl::pass(const S& s) const {
  return {.B = s.B,
          .Tn = s.Tn,
          .C = m.C,
          .Cl = m.Cl,
          .Hl = m.Hl,
          .Fl = m.Fl,
          .tp_rank = m.shard.tp_rank,
          .tp = m.tp,
          .pdrop = m.cfg.dropout,
          .dropped = s.dropped,
          .drop_key = s.drop_key,
          .drop_first_sample = s.drop_first_sample,
          .recompute = opt.recompute,
          .scratch = &ws,
          .profile = profile,
          .moe = s.train || !m.moe_whole ? m.moe_layer.get() : m.moe_whole.get(),
          .dropless = !s.train};
}

template <typename T>
ChunkExecutor<T>::ChunkExecutor(GPTModel<T>& model, ActivationWorkspace<T>& workspace,
                                const ExecutorOptions& options)
    : impl_(std::make_unique<Impl>(*model.impl_, *workspace.scratch_, options)) {}

template <typename T>
ChunkExecutor<T>::~ChunkExecutor() = default;
template <typename T>
ChunkExecutor<T>::ChunkExecutor(ChunkExecutor&&) noexcept = default;

template <typename T>
const ExecutorOptions& ChunkExecutor<T>::options() const { return impl_->opt; }
template <typename T>
bool ChunkExecutor<T>::has_embedding() const { return impl_->with_embedding; }
template <typename T>
bool ChunkExecutor<T>::has_head() const { return impl_->with_head; }
template <typename T>
void ChunkExecutor<T>::set_profile(KernelProfile* profile) { impl_->profile = profile; }

template <typename T>
size_t ChunkExecutor<T>::pooled_bytes() const {
  size_t n = 0;
  for (const auto& b : impl_->pool) n += b->bytes();
  return n;
}

template <typename T>
T ChunkExecutor<T>::forward(ActivationSet<T>& set, const int32_t* tokens, const int32_t* targets,
                            int batch, int seq, bool train, Rng* dropout_rng,
                            int64_t first_sample) {
  LOOM_CHECK(impl_->with_embedding && tokens != nullptr,
             "forward: takes tokens on a chunk with the embedding (forward_activation otherwise)");
  return impl_->forward(*set.state_, tokens, nullptr, targets, batch, seq, train, dropout_rng,
                        first_sample);
}

template <typename T>
T ChunkExecutor<T>::forward_activation(ActivationSet<T>& set, const T* input,
                                       const int32_t* targets, int batch, int seq, bool train,
                                       Rng* dropout_rng, int64_t first_sample) {
  LOOM_CHECK(!impl_->with_embedding && input != nullptr,
             "forward_activation: takes an activation on a chunk without the embedding");
  return impl_->forward(*set.state_, nullptr, input, targets, batch, seq, train, dropout_rng,
                        first_sample);
}

template <typename T>
moe::MoeStats ChunkExecutor<T>::moe_stats(const ActivationSet<T>& set) const {
  const ActivationState<T>& s = *set.state_;
  moe::MoeStats sum;
  int blocks = 0;
  for (const BlockActs<T>& b : s.blocks) {
    if (!b.moe_stats) continue;
    const moe::MoeStats& x = *b.moe_stats;
    sum.load_balance_loss += x.load_balance_loss;
    sum.z_loss += x.z_loss;
    sum.dropped_share += x.dropped_share;
    sum.max_over_mean_load = std::max(sum.max_over_mean_load, x.max_over_mean_load);
    ++blocks;
  }
  if (blocks > 0) sum.dropped_share /= blocks;
  return sum;
}

template <typename T>
const T* ChunkExecutor<T>::output(const ActivationSet<T>& set) const {
  return set.state_->output();
}

template <typename T>
const T* ChunkExecutor<T>::logits(const ActivationSet<T>& set) const {
  return set.state_->logits;
}

template <typename T>
void ChunkExecutor<T>::logits_row(const ActivationSet<T>& set, int n, T* out) const {
  const Impl& x = *impl_;
  const ActivationState<T>& s = *set.state_;
  const int V = x.m.cfg.vocab_size;
  LOOM_CHECK(x.with_head && n >= 0 && n < s.B * s.Tn && s.logits != nullptr, "logits_row: row ",
             n, " of the set's forward does not exist (or a split backward has released it)");
  const T* row = s.logits + static_cast<size_t>(n) * x.m.vocab.Vl;
  if (!x.m.tp) {
    std::copy(row, row + V, out);
    return;
  }
  // Each whole-vocabulary column lives on one rank: the sum over ranks is a gather.
  std::fill(out, out + V, T(0));
  std::copy(row, row + x.m.vocab.valid, out + x.m.vocab.vocab_start);
  x.m.tp->allreduce_sum(out, V);
}

template <typename T>
void ChunkExecutor<T>::backward(ActivationSet<T>& set, T loss_scale, const GradReadyFn& on_ready) {
  LOOM_CHECK(impl_->with_head, "backward: a chunk without the head takes its output's "
             "gradient (backward_from_output)");
  impl_->backward(*set.state_, loss_scale, nullptr, on_ready, /*weights=*/true);
}

template <typename T>
void ChunkExecutor<T>::backward_from_output(ActivationSet<T>& set, const T* doutput,
                                            const GradReadyFn& on_ready) {
  LOOM_CHECK(!impl_->with_head && doutput != nullptr,
             "backward_from_output: for a chunk without the head, given its output's gradient");
  impl_->backward(*set.state_, T(1), doutput, on_ready, /*weights=*/true);
}

template <typename T>
void ChunkExecutor<T>::backward_input(ActivationSet<T>& set, T loss_scale, const T* doutput) {
  LOOM_CHECK(impl_->opt.split_backward, "backward_input: the executor was built without "
             "split_backward (its backward is one call)");
  LOOM_CHECK(impl_->with_head == (doutput == nullptr),
             "backward_input: the output's gradient is given exactly on chunks without the head");
  impl_->backward(*set.state_, loss_scale, doutput, {}, /*weights=*/false);
}

template <typename T>
void ChunkExecutor<T>::backward_weights(ActivationSet<T>& set) {
  impl_->backward_weights(*set.state_);
}

template <typename T>
const T* ChunkExecutor<T>::input_grad(const ActivationSet<T>& set) const {
  LOOM_CHECK(!impl_->with_embedding && set.state_->backward_done,
             "input_grad: only after the backward of a chunk without the embedding");
  return impl_->ws.dres;
}

// Impl's members are defined here and in chunk_executor_run.cpp: the class's instantiation below
// covers those defined here (naming Impl again would instantiate it twice, which clang refuses).
template class ChunkExecutor<float>;
template class ChunkExecutor<double>;

}  // namespace loom
