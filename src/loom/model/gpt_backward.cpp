// GPTModel's backward: the fused backward and its split into B (input gradient) and W (weight
// gradients), block by block in reverse, with the recomputation that the recompute modes need.
#include <cstring>

#include "loom/model/gpt_impl.hpp"

namespace loom {

template <typename T>
void GPTModel<T>::Impl::backward(T loss_scale, const T* doutput, const GradReadyFn& on_ready,
                                 bool weights) {
  LOOM_CHECK(B > 0, "backward: no forward has run");
  LOOM_CHECK(!with_head || have_targets, "backward: the last forward had no targets");
  LOOM_CHECK(!backward_done, "backward: already run for the last forward (it turns the logits "
             "into their gradient in place); run forward again");
  LOOM_CHECK(weights || planned_split, "backward_input: the last forward ran without "
             "set_split_backward(true)");
  LOOM_CHECK(planned_chunk == chunk, "backward: the last forward on this activation set ran "
             "chunk ", planned_chunk, ", not the current chunk ", chunk);
  backward_done = true;
  weights_pending = !weights;
  ensure_scratch();
  const size_t NC = static_cast<size_t>(B) * Tn * C;
  auto ready = [&](size_t begin, size_t end) {
    if (on_ready && begin < end) on_ready(begin, end);
  };
  if (with_head) {
    head_backward(loss_scale);
    ready(head_begin, n_params);
  } else {
    std::memcpy(dres, doutput, NC * sizeof(T));
  }
  for (int l = hi - lo - 1; l >= 0; --l) {
    block_backward(l, weights);
    ready(p.blocks[lo + l].begin, p.blocks[lo + l].end);
  }
  if (with_embedding) {
    if (dropped) {
      auto t = timed(Kernel::kDropout, true);
      dropout_backward(dres, dres, emb_mask, cfg.dropout, NC);
    }
    embedding_weights();
  }
  if (chunk == 0) ready(0, prefix_end);
  if (!weights) release_b_only();
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

// W of a split backward: the blocks' linear layers' weight gradients from their inputs (kept by
// the forward) and their outputs' gradients (kept by B), in the order the fused backward adds
// them. B has taken the head's and the embedding's (the tied wte's) already, as the fused
// backward does, so that a set waiting for W keeps neither the logits nor the scratch.
template <typename T>
void GPTModel<T>::Impl::backward_weights() {
  LOOM_CHECK(weights_pending, "backward_weights: no backward_input is waiting for its weights");
  weights_pending = false;
  const int N = B * Tn;
  for (int l = hi - lo - 1; l >= 0; --l) {
    const BlockTensors<T>& w = p.blocks[lo + l];
    const BlockTensors<T>& gw = g.blocks[lo + l];
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
}

template <typename T>
void GPTModel<T>::Impl::head_backward(T loss_scale) {
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
    // The weight gradient too under a split backward: W would need the logits' gradient (the
    // largest activation by far) kept until then.
    lm_head_backward(dln, g.wte, logits, lnf, p.wte, N, C, vocab.Vl);
  }
  reduce(dln, static_cast<size_t>(N) * C);  // each rank's vocabulary columns' share of dx
  const T* x_last = hi > lo ? resid_out[hi - lo - 1] : resid0;
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
  const BlockTensors<T>& w = p.blocks[lo + l];
  const BlockTensors<T>& gw = g.blocks[lo + l];
  const BlockActs<T>& a = blocks[l];
  const T* x = l > 0 ? resid_out[l - 1] : resid0;
  if (recompute == Recompute::kFull) block_forward(l, x, /*redo=*/true);
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

// The backward members are defined in this file only; gpt.cpp instantiates the rest.
template struct GPTModel<float>::Impl;
template struct GPTModel<double>::Impl;

}  // namespace loom
