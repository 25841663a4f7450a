#include "loom/model/gpt_block.hpp"

#include <cstring>

#include "loom/kernels/cpu/attention.hpp"
#include "loom/kernels/cpu/dropout.hpp"
#include "loom/kernels/cpu/gelu.hpp"
#include "loom/kernels/cpu/layernorm.hpp"
#include "loom/kernels/cpu/linear.hpp"
#include "loom/kernels/cpu/residual.hpp"

namespace loom::gpt_internal {

using namespace kernels;

template <typename T>
void BlockPass<T>::draw_masks(uint8_t* mask, int layer, DropSite site, int heads,
                              size_t per_head) const {
  auto t = timed(Kernel::kDropout, false);
  const int head0 = site == DropSite::kAttention ? tp_rank * heads : 0;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < heads; ++h) {
      // The fields packed into one word (sample < 2^32, layer + 1 < 2^16, site < 2^4, head <
      // 2^12), xored into the key: distinct words seed independent streams.
      const uint64_t word = static_cast<uint64_t>(drop_first_sample + b) << 32 |
                            static_cast<uint64_t>(layer + 1) << 16 |
                            static_cast<uint64_t>(site) << 12 | static_cast<uint64_t>(head0 + h);
      dropout_mask(mask + (static_cast<size_t>(b) * heads + h) * per_head, per_head, pdrop,
                   Rng(drop_key ^ word).next_u64());
    }
}

namespace {

// Residual-branch dropout: out = in + dropout(branch), with the branch in scratch->dbranch (free
// during the forward). The masks are replicated over the tp ranks.
template <typename T>
void add_branch(const BlockPass<T>& pass, int layer, T* out, const T* in, uint8_t* mask,
                DropSite site, bool redo) {
  const size_t NC = static_cast<size_t>(pass.rows()) * pass.C;
  T* branch = pass.scratch->dbranch;
  if (pass.dropped) {
    if (!redo) pass.draw_masks(mask, layer, site, 1, static_cast<size_t>(pass.Tn) * pass.C);
    auto t = pass.timed(Kernel::kDropout, false);
    dropout_forward(branch, branch, mask, pass.pdrop, NC);
  }
  auto t = pass.timed(Kernel::kResidual, false);
  residual_forward(out, in, branch, NC);
}

// ln_1, c_attn, attention, c_proj (row-parallel: all-reduced), residual: x -> a.mid.
template <typename T>
void attention_half_forward(const BlockPass<T>& pass, int layer, const BlockTensors<T>& w,
                            BlockActs<T>& a, const T* x, bool redo) {
  const int N = pass.rows(), C = pass.C, Cl = pass.Cl, Hl = pass.Hl, Tn = pass.Tn;
  const BackwardScratch<T>& s = *pass.scratch;
  {
    auto t = pass.timed(Kernel::kLayerNorm, false);
    layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, w.ln1_w, w.ln1_b, N, C);
  }
  {
    auto t = pass.timed(Kernel::kMatmulQKV, false);
    linear_forward(a.qkv, a.ln1, w.qkv_w, w.qkv_b, N, C, 3 * Cl);
  }
  uint8_t* att_mask = pass.dropped ? a.att_mask : nullptr;
  // Each tp rank drops in its own heads, with the masks of those heads at tp 1.
  if (pass.dropped && !redo)
    pass.draw_masks(att_mask, layer, DropSite::kAttention, Hl, static_cast<size_t>(Tn) * Tn);
  {
    auto t = pass.timed(Kernel::kAttention, false);
    attention_forward(a.atty, a.att, a.qkv, att_mask, pass.pdrop, AttentionShape{pass.B, Tn, Cl, Hl},
                      s.att_scratch, s.att_scratch_size);
  }
  // A row-parallel projection's bias is added once, by tp rank 0, before the all-reduce.
  {
    auto t = pass.timed(Kernel::kMatmulAttnProj, false);
    linear_forward(s.dbranch, a.atty, w.proj_w, pass.tp_rank == 0 ? w.proj_b : nullptr, N, Cl, C);
  }
  pass.reduce(s.dbranch, static_cast<size_t>(N) * C);
  add_branch(pass, layer, a.mid, x, a.proj_mask, DropSite::kAttentionProj, redo);
}

// ln_2, c_fc, GELU, c_proj (row-parallel: all-reduced), residual: a.mid -> out. redo stops after
// the GELU.
template <typename T>
void mlp_half_forward(const BlockPass<T>& pass, int layer, const BlockTensors<T>& w,
                      BlockActs<T>& a, T* out, bool redo) {
  const int N = pass.rows(), C = pass.C, Fl = pass.Fl;
  const BackwardScratch<T>& s = *pass.scratch;
  {
    auto t = pass.timed(Kernel::kLayerNorm, false);
    layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, w.ln2_w, w.ln2_b, N, C);
  }
  if (a.moe) {
    // The experts are replicated over tp: every rank computes the whole branch (no all-reduce).
    // redo keeps the forward's routing and expert activations (the set holds them).
    if (redo) return;
    // Under ep the layer runs its share of the experts (pass.moe->local), the tokens travelling.
    *a.moe_stats = pass.moe->forward(s.dbranch, a.ln2, N, moe::as_const(pass.moe->local(w.moe)),
                                     *a.moe, pass.dropless);
    add_branch(pass, layer, out, a.mid, a.mlp_mask, DropSite::kMlpProj, redo);
    return;
  }
  {
    auto t = pass.timed(Kernel::kMatmulFC, false);
    linear_forward(a.fc, a.ln2, w.fc_w, w.fc_b, N, C, Fl);
  }
  {
    auto t = pass.timed(Kernel::kGelu, false);
    gelu_forward(a.fc_gelu, a.fc, static_cast<size_t>(N) * Fl);
  }
  if (redo) return;
  {
    auto t = pass.timed(Kernel::kMatmulMLPProj, false);
    linear_forward(s.dbranch, a.fc_gelu, w.mlp_w, pass.tp_rank == 0 ? w.mlp_b : nullptr, N, Fl, C);
  }
  pass.reduce(s.dbranch, static_cast<size_t>(N) * C);
  add_branch(pass, layer, out, a.mid, a.mlp_mask, DropSite::kMlpProj, redo);
}

// Gradient reaching a residual branch's output: the stream gradient, through the dropout mask.
template <typename T>
const T* branch_grad(const BlockPass<T>& pass, const uint8_t* mask) {
  const BackwardScratch<T>& s = *pass.scratch;
  if (!pass.dropped) return s.dres;
  auto t = pass.timed(Kernel::kDropout, true);
  dropout_backward(s.dbranch, s.dres, mask, pass.pdrop, static_cast<size_t>(pass.rows()) * pass.C);
  return s.dbranch;
}

// A linear layer's backward: the input gradient always; the weight gradients now, or (split
// backward) the output gradient kept in `keep` for block_weights.
template <typename T>
void linear_grads(const BlockPass<T>& pass, bool weights, T* dinp, T* dw, T* dbias, const T* dout,
                  T* keep, const T* inp, const T* wt, int IC, int OC) {
  const int N = pass.rows();
  if (weights) {
    linear_backward(dinp, dw, dbias, dout, inp, wt, N, IC, OC);
  } else {
    std::memcpy(keep, dout, static_cast<size_t>(N) * OC * sizeof(T));
    linear_backward<T>(dinp, nullptr, nullptr, dout, inp, wt, N, IC, OC);
  }
}

// dres: the gradient of the block's output -> that of a.mid.
template <typename T>
void mlp_half_backward(const BlockPass<T>& pass, const BlockTensors<T>& w,
                       const BlockTensors<T>& gw, BlockActs<T>& a, bool weights) {
  const int N = pass.rows(), C = pass.C, Fl = pass.Fl;
  const BackwardScratch<T>& s = *pass.scratch;
  if (a.moe) {
    // Weight gradients now even in a split backward's B (its W has no MoE work).
    pass.moe->backward(s.dln, branch_grad(pass, a.mlp_mask), a.ln2,
                       moe::as_const(pass.moe->local(w.moe)), pass.moe->local(gw.moe), *a.moe,
                       pass.moe_loss_scale);
    auto t = pass.timed(Kernel::kLayerNorm, true);
    layernorm_backward(s.dres, gw.ln2_w, gw.ln2_b, s.dln, a.mid, w.ln2_w, a.ln2_mean, a.ln2_rstd,
                       N, C);
    return;
  }
  {
    const T* dout = branch_grad(pass, a.mlp_mask);
    auto t = pass.timed(Kernel::kMatmulMLPProj, true);
    linear_grads(pass, weights, s.dfc, gw.mlp_w, gw.mlp_b, dout, a.d_mlp, a.fc_gelu, w.mlp_w, Fl, C);
  }
  {
    auto t = pass.timed(Kernel::kGelu, true);
    gelu_backward(s.dfc, a.fc, s.dfc, static_cast<size_t>(N) * Fl);
  }
  {
    auto t = pass.timed(Kernel::kMatmulFC, true);
    linear_grads(pass, weights, s.dln, gw.fc_w, gw.fc_b, s.dfc, a.d_fc, a.ln2, w.fc_w, C, Fl);
  }
  pass.reduce(s.dln, static_cast<size_t>(N) * C);
  {
    auto t = pass.timed(Kernel::kLayerNorm, true);
    layernorm_backward(s.dres, gw.ln2_w, gw.ln2_b, s.dln, a.mid, w.ln2_w, a.ln2_mean, a.ln2_rstd,
                       N, C);
  }
}

// dres: the gradient of a.mid -> that of x.
template <typename T>
void attention_half_backward(const BlockPass<T>& pass, const BlockTensors<T>& w,
                             const BlockTensors<T>& gw, BlockActs<T>& a, const T* x, bool weights) {
  const int N = pass.rows(), C = pass.C, Cl = pass.Cl;
  const BackwardScratch<T>& s = *pass.scratch;
  {
    const T* dout = branch_grad(pass, a.proj_mask);
    auto t = pass.timed(Kernel::kMatmulAttnProj, true);
    linear_grads(pass, weights, s.datty, gw.proj_w, gw.proj_b, dout, a.d_proj, a.atty, w.proj_w,
                 Cl, C);
  }
  {
    auto t = pass.timed(Kernel::kAttention, true);
    const AttentionShape shape{pass.B, pass.Tn, Cl, pass.Hl};
    uint8_t* att_mask = pass.dropped ? a.att_mask : nullptr;
    if (pass.recompute == Recompute::kSelective) {
      // The probabilities again, from the kept q,k,v; the output goes to dqkv, overwritten next.
      attention_forward(s.dqkv, a.att, a.qkv, att_mask, pass.pdrop, shape, s.att_scratch,
                        s.att_scratch_size);
    }
    attention_backward(s.dqkv, s.datty, a.qkv, a.att, att_mask, pass.pdrop, shape, s.att_scratch,
                       s.att_scratch_size);
  }
  {
    auto t = pass.timed(Kernel::kMatmulQKV, true);
    linear_grads(pass, weights, s.dln, gw.qkv_w, gw.qkv_b, s.dqkv, a.d_qkv, a.ln1, w.qkv_w, C,
                 3 * Cl);
  }
  pass.reduce(s.dln, static_cast<size_t>(N) * C);
  {
    auto t = pass.timed(Kernel::kLayerNorm, true);
    layernorm_backward(s.dres, gw.ln1_w, gw.ln1_b, s.dln, x, w.ln1_w, a.ln1_mean, a.ln1_rstd, N, C);
  }
}

}  // namespace

template <typename T>
void block_forward(const BlockPass<T>& pass, int layer, const BlockTensors<T>& w, BlockActs<T>& a,
                   const T* x, T* out, bool redo) {
  attention_half_forward(pass, layer, w, a, x, redo);
  mlp_half_forward(pass, layer, w, a, out, redo);
}

// Gradients of the replicated tensors (LayerNorms, row-parallel biases) come out identical on
// every tp rank: they are computed from dres, which every rank holds identically after the
// all-reduces of dln, by the same deterministic kernels.
template <typename T>
void block_backward(const BlockPass<T>& pass, int layer, const BlockTensors<T>& w,
                    const BlockTensors<T>& gw, BlockActs<T>& a, const T* x, bool weights) {
  if (pass.recompute == Recompute::kFull) block_forward<T>(pass, layer, w, a, x, nullptr, /*redo=*/true);
  mlp_half_backward(pass, w, gw, a, weights);
  attention_half_backward(pass, w, gw, a, x, weights);
}

template <typename T>
void block_weights(const BlockPass<T>& pass, const BlockTensors<T>& w, const BlockTensors<T>& gw,
                   const BlockActs<T>& a) {
  const int N = pass.rows(), C = pass.C, Cl = pass.Cl, Fl = pass.Fl;
  if (!a.moe) {  // an MoE MLP's weight gradients were taken in B
    {
      auto t = pass.timed(Kernel::kMatmulMLPProj, true);
      linear_backward<T>(nullptr, gw.mlp_w, gw.mlp_b, a.d_mlp, a.fc_gelu, w.mlp_w, N, Fl, C);
    }
    {
      auto t = pass.timed(Kernel::kMatmulFC, true);
      linear_backward<T>(nullptr, gw.fc_w, gw.fc_b, a.d_fc, a.ln2, w.fc_w, N, C, Fl);
    }
  }
  {
    auto t = pass.timed(Kernel::kMatmulAttnProj, true);
    linear_backward<T>(nullptr, gw.proj_w, gw.proj_b, a.d_proj, a.atty, w.proj_w, N, Cl, C);
  }
  {
    auto t = pass.timed(Kernel::kMatmulQKV, true);
    linear_backward<T>(nullptr, gw.qkv_w, gw.qkv_b, a.d_qkv, a.ln1, w.qkv_w, N, C, 3 * Cl);
  }
}

#define LOOM_INSTANTIATE_BLOCK(T)                                                              \
  template struct BlockPass<T>;                                                                \
  template void block_forward(const BlockPass<T>&, int, const BlockTensors<T>&, BlockActs<T>&, \
                              const T*, T*, bool);                                             \
  template void block_backward(const BlockPass<T>&, int, const BlockTensors<T>&,               \
                               const BlockTensors<T>&, BlockActs<T>&, const T*, bool);         \
  template void block_weights(const BlockPass<T>&, const BlockTensors<T>&,                     \
                              const BlockTensors<T>&, const BlockActs<T>&);
LOOM_INSTANTIATE_BLOCK(float)
LOOM_INSTANTIATE_BLOCK(double)
#undef LOOM_INSTANTIATE_BLOCK

}  // namespace loom::gpt_internal
