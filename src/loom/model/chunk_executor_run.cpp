// ChunkExecutor's forward and backward: the embedding, the blocks (gpt_block) and the head, and
// the backward split into B (input gradient) and W (weight gradients).
#include <cstring>
#include <string>

#include "loom/core/trace.hpp"
#include "loom/kernels/cpu/dropout.hpp"
#include "loom/kernels/cpu/embedding.hpp"
#include "loom/kernels/cpu/layernorm.hpp"
#include "loom/kernels/cpu/lm_head.hpp"
#include "loom/kernels/cpu/softmax_ce.hpp"
#include "loom/kernels/cpu/vocab_parallel_ce.hpp"
#include "loom/kernels/cpu/vocab_parallel_embedding.hpp"
#include "loom/model/chunk_executor_impl.hpp"

namespace loom {

using namespace kernels;
using namespace gpt_internal;

template <typename T>
T ChunkExecutor<T>::Impl::forward(S& s, const int32_t* tok, const T* input, const int32_t* tgt,
                                  int batch, int seq, bool train, Rng* rng,
                                  int64_t first_sample) {
  const GPTConfig& cfg = m.cfg;
  LOOM_CHECK(batch > 0, "forward: batch must be > 0, got ", batch);
  LOOM_CHECK(seq > 0 && seq <= cfg.context_len, "forward: sequence length ", seq,
             " must be in [1, context_len = ", cfg.context_len, "]");
  const int N = batch * seq;
  LOOM_CHECK(!s.weights_pending, "forward: the set's backward_input still waits for its "
             "backward_weights (it would lose what they need)");
  s.dropped = train && cfg.dropout > 0;
  LOOM_CHECK(!s.dropped || rng != nullptr, "forward: dropout ", cfg.dropout,
             " in training needs a dropout_rng");
  LOOM_CHECK(first_sample >= 0, "forward: first_sample must be >= 0, got ", first_sample);
  if (s.dropped) {
    s.drop_key = rng->next_u64();
    s.drop_first_sample = first_sample;
  }
  if (tok != nullptr) check_tokens(tok, N, cfg.vocab_size, "tokens");
  s.have_targets = tgt != nullptr && with_head;
  if (s.have_targets) check_tokens(tgt, N, cfg.vocab_size, "targets");
  s.B = batch;
  s.Tn = seq;
  s.sp = sequence_parallel(seq);
  s.train = train;
  ensure_capacity(s);
  s.backward_done = false;
  if (tok != nullptr) s.tokens.assign(tok, tok + N);
  if (s.have_targets) s.targets.assign(tgt, tgt + N);
  const BlockPass<T> p = pass(s);
  constexpr int kEnds = ParamGather::kEnds, kNone = ParamGather::kNone;
  if (tok != nullptr) {
    use(kEnds, lo < hi ? lo : kNone);
    embed(s, p);
  } else {  // this rank's rows of the whole input
    std::memcpy(s.resid0, input + p.first_row() * m.C,
                static_cast<size_t>(p.local_rows()) * m.C * sizeof(T));
  }
  const T* x = s.resid0;
  for (int l = 0; l < hi - lo; ++l) {
    use(lo + l, lo + l + 1 < hi ? lo + l + 1 : with_head ? kEnds : kNone);
    // Trace: one event per block (named like the backward's "backward h.<l>" events).
    const double block_start = trace::enabled() ? trace::now_us() : -1;
    block_forward(p, m.block_id[lo + l], m.p.blocks[lo + l], s.blocks[l], x, s.resid_out[l],
                  /*redo=*/false);
    if (block_start >= 0)
      trace::complete("forward h." + std::to_string(m.block_id[lo + l]), "compute", block_start);
    x = s.resid_out[l];
  }
  if (s.stage_output) p.gather_rows(s.output(), s.stage_output);
  if (!with_head) return T(0);
  use(kEnds, kNone);
  return head_forward(s, p);
}

// Under tp each rank looks up the tokens of its vocabulary rows and the partial sums are reduced
// (reduce-scattered to the local rows under sp, in the scratch's dbranch, free in a forward).
template <typename T>
void ChunkExecutor<T>::Impl::embed(S& s, const BlockPass<T>& p) {
  const int B = s.B, Tn = s.Tn, C = m.C;
  const size_t NlC = static_cast<size_t>(p.local_rows()) * C;
  {
    auto t = p.timed(Kernel::kEmbedding, false);
    if (!m.tp) {
      embedding_forward(s.resid0, s.tokens.data(), m.p.wte, m.p.wpe, B, Tn, C);
    } else {
      T* sums = p.sp ? ws.dbranch : s.resid0;  // (N, C)
      vocab_parallel_embedding_forward(sums, s.tokens.data(), m.p.wte, B * Tn, C,
                                       m.vocab.vocab_start, m.vocab.valid);
      const T* mine = p.reduce_rows(sums);
      if (mine != s.resid0) std::memcpy(s.resid0, mine, NlC * sizeof(T));
      p.for_each_sample_run([&](int, int position, int count, size_t row) {
        add_position_embedding(s.resid0 + row * C, m.p.wpe + static_cast<size_t>(position) * C,
                               1, count, C);
      });
    }
  }
  if (s.dropped) {
    p.draw_row_masks(s.emb_mask, -1, DropSite::kEmbedding);
    auto t = p.timed(Kernel::kDropout, false);
    dropout_forward(s.resid0, s.resid0, s.emb_mask, m.cfg.dropout, NlC);
  }
}

template <typename T>
T ChunkExecutor<T>::Impl::head_forward(S& s, const BlockPass<T>& p) {
  const int N = s.B * s.Tn, C = m.C;
  const T* x = s.output();
  {
    auto t = p.timed(Kernel::kLayerNorm, false);
    layernorm_forward(p.local(s.lnf), s.lnf_mean, s.lnf_rstd, x, m.p.lnf_w, m.p.lnf_b,
                      p.local_rows(), C);
  }
  p.gather_rows(p.local(s.lnf), s.lnf);  // the LM head reads every row
  {
    auto t = p.timed(Kernel::kLMHead, false);
    lm_head_forward(s.logits, s.lnf, m.p.wte, N, C, m.vocab.Vl);
  }
  if (!s.have_targets) return T(0);
  auto t = p.timed(Kernel::kSoftmaxCE, false);
  if (!m.tp) {
    softmax_ce_forward(s.losses, s.lse, s.logits, s.targets.data(), N, m.vocab.Vl);
  } else {
    T* row_max = s.ce_stats;
    T* stats = s.ce_stats + N;
    vocab_parallel_row_max(row_max, s.logits, N, m.vocab);
    m.tp->allreduce_max(row_max, N);
    vocab_parallel_sum_exp(stats, s.logits, row_max, s.targets.data(), N, m.vocab);
    m.tp->allreduce_sum(stats, 2 * static_cast<size_t>(N));
    vocab_parallel_ce_finish(s.losses, s.lse, row_max, stats, N);
  }
  double sum = 0;
  for (int n = 0; n < N; ++n) sum += s.losses[n];
  return static_cast<T>(sum / N);
}

template <typename T>
void ChunkExecutor<T>::Impl::backward(S& s, T loss_scale, const T* doutput,
                                      const GradReadyFn& on_ready, bool weights) {
  LOOM_CHECK(s.B > 0, "backward: no forward has run on the set");
  LOOM_CHECK(!with_head || s.have_targets, "backward: the set's forward had no targets");
  LOOM_CHECK(!s.backward_done, "backward: already run for the set's forward (it turns the logits "
             "into their gradient in place); run forward again");
  LOOM_CHECK(s.planned_chunk == opt.chunk && s.planned_recompute == opt.recompute,
             "backward: the set's forward ran chunk ", s.planned_chunk, " with recompute ",
             recompute_name(s.planned_recompute), ", this executor runs chunk ", opt.chunk,
             " with recompute ", recompute_name(opt.recompute));
  LOOM_CHECK(with_head || !m.moe_layer,
             "backward: a chunk without the head of a mixture-of-experts model (its auxiliary "
             "losses' weight, the loss scale, is not known there; pipeline parallelism with MoE is "
             "not supported yet)");
  s.backward_done = true;
  s.weights_pending = !weights;
  ensure_scratch(s);
  BlockPass<T> p = pass(s);
  p.moe_loss_scale = loss_scale;
  const size_t NlC = static_cast<size_t>(p.local_rows()) * m.C;
  auto ready = [&](size_t begin, size_t end) {
    if (on_ready && begin < end) on_ready(begin, end);
  };
  if (with_head) {
    use(ParamGather::kEnds, hi > lo ? hi - 1 : ParamGather::kNone);
    head_backward(s, p, loss_scale);
    ready(m.head_begin, m.n_params);
  } else {  // this rank's rows of the output's gradient
    std::memcpy(ws.dres, doutput + p.first_row() * m.C, NlC * sizeof(T));
  }
  for (int l = hi - lo - 1; l >= 0; --l) {
    use(lo + l, l > 0 ? lo + l - 1 : ParamGather::kNone);
    block_backward(p, m.block_id[lo + l], m.p.blocks[lo + l], m.g.blocks[lo + l], s.blocks[l],
                   l > 0 ? s.resid_out[l - 1] : s.resid0, weights);
    ready(m.p.blocks[lo + l].begin, m.p.blocks[lo + l].end);
  }
  ws.input_grad = nullptr;
  if (with_embedding) {
    if (s.dropped) {
      auto t = p.timed(Kernel::kDropout, true);
      dropout_backward(ws.dres, ws.dres, s.emb_mask, m.cfg.dropout, NlC);
    }
    embedding_weights(s, p, p.gather_rows(ws.dres, ws.dbranch));
  } else {
    ws.input_grad = p.gather_rows(ws.dres, ws.dln);  // every row, for the previous stage
  }
  if (opt.chunk == 0) ready(0, m.prefix_end);
  if (!weights) release_b_only(s);
}

template <typename T>
void ChunkExecutor<T>::Impl::embedding_weights(S& s, const BlockPass<T>& p, const T* dout) {
  auto t = p.timed(Kernel::kEmbedding, true);
  if (!m.tp)
    embedding_backward(m.g.wte, m.g.wpe, dout, s.tokens.data(), s.B, s.Tn, m.C);
  else
    vocab_parallel_embedding_backward(m.g.wte, m.g.wpe, dout, s.tokens.data(), s.B, s.Tn, m.C,
                                      m.vocab.vocab_start, m.vocab.valid);
}

// W of a split backward, block by block in reverse (gpt_block's block_weights). B has taken the
// head's and the embedding's (the tied wte's) already, as the fused backward does, so that a set
// waiting for W keeps neither the logits nor the scratch.
template <typename T>
void ChunkExecutor<T>::Impl::backward_weights(S& s) {
  LOOM_CHECK(s.weights_pending, "backward_weights: no backward_input is waiting for its weights");
  LOOM_CHECK(!m.gather, "backward_weights: the split backward does not gather sharded parameters "
             "(ZeRO-3 runs without pipeline parallelism)");
  s.weights_pending = false;
  const BlockPass<T> p = pass(s);
  for (int l = hi - lo - 1; l >= 0; --l)
    block_weights(p, m.p.blocks[lo + l], m.g.blocks[lo + l], s.blocks[l]);
}

template <typename T>
void ChunkExecutor<T>::Impl::head_backward(S& s, const BlockPass<T>& p, T loss_scale) {
  const int N = s.B * s.Tn, C = m.C;
  {
    auto t = p.timed(Kernel::kSoftmaxCE, true);
    if (!m.tp)
      softmax_ce_backward(s.logits, s.logits, s.lse, s.targets.data(), loss_scale / T(N), N,
                          m.vocab.Vl);
    else
      vocab_parallel_ce_backward(s.logits, s.logits, s.lse, s.targets.data(), loss_scale / T(N), N,
                                 m.vocab);
  }
  {
    auto t = p.timed(Kernel::kLMHead, true);
    // The weight gradient too under a split backward: W would need the logits' gradient (the
    // largest activation by far) kept until then.
    lm_head_backward(ws.dln, m.g.wte, s.logits, s.lnf, m.p.wte, N, C, m.vocab.Vl);
  }
  // Each rank's vocabulary columns' share of dx, summed (this rank's rows of it under sp).
  const T* dln = p.reduce_rows(ws.dln);
  p.begin_ln_grads();
  {
    auto t = p.timed(Kernel::kLayerNorm, true);
    std::memset(ws.dres, 0, static_cast<size_t>(p.local_rows()) * C * sizeof(T));
    layernorm_backward(ws.dres, p.ln_grad(m.g.lnf_w, 0), p.ln_grad(m.g.lnf_b, 1), dln, s.output(),
                       m.p.lnf_w, s.lnf_mean, s.lnf_rstd, p.local_rows(), C);
  }
  p.add_ln_grads({m.g.lnf_w, m.g.lnf_b});
}

template struct ChunkExecutor<float>::Impl;
template struct ChunkExecutor<double>::Impl;

}  // namespace loom
