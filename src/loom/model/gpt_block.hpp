#pragma once
// One transformer block's forward and backward, in two halves: the attention half (ln_1,
// c_attn, attention, c_proj, residual) and the MLP half (ln_2, c_fc, GELU, c_proj, residual).
// A chunk executor runs its blocks through these; a block variant replaces a half (a
// mixture-of-experts MLP), and a sequence-parallel layout changes the tp collectives around the
// LayerNorm / residual regions (BlockPass::reduce) here, in one place.
#include <cstddef>
#include <cstdint>

#include "loom/model/activation_state.hpp"
#include "loom/model/gpt_weights.hpp"
#include "loom/model/kernel_profile.hpp"
#include "loom/model/moe/moe_layer.hpp"
#include "loom/model/recompute.hpp"
#include "loom/model/tp_group.hpp"

namespace loom::gpt_internal {

// Where dropout applies (a mask seed's site field).
enum class DropSite : uint64_t { kEmbedding, kAttention, kAttentionProj, kMlpProj };

// What every block of one forward or backward of a chunk on one activation set shares: the
// shape, tensor parallelism, dropout, recomputation, the backward's scratch and the profile.
template <typename T>
struct BlockPass {
  int B, Tn;             // rows and tokens per row; N = B x Tn
  int C, Cl, Hl, Fl;     // widths: model, local attention, local heads, local MLP
  int tp_rank;
  TensorParallelGroup* tp;  // nullptr: tp 1
  float pdrop;
  bool dropped;  // dropout applies to this forward (training with dropout > 0)
  uint64_t drop_key;
  int64_t drop_first_sample;
  Recompute recompute;
  const BackwardScratch<T>* scratch;
  KernelProfile* profile;
  const moe::MoeLayer<T>* moe = nullptr;  // the MoE blocks' MLP (nullptr: dense model)
  bool dropless = true;                    // MoE without capacity (not a training forward)
  T moe_loss_scale = T(1);                 // backward: the weight of the MoE auxiliary losses

  int rows() const { return B * Tn; }
  ProfileScope timed(Kernel k, bool backward) const { return ProfileScope(profile, k, backward); }
  // The tp all-reduce of partial sums (a no-op at tp 1).
  void reduce(T* data, size_t n) const {
    if (tp) tp->allreduce_sum(data, n);
  }
  // The forward's dropout masks of one site of global layer `layer` (-1: the embedding), laid
  // out (B, heads, per_head): each (sample, head) gets the mask that the key, the sample's index
  // drop_first_sample + b, the layer, the site and the global head (tp rank x heads + h for the
  // attention) define, so every layout draws the same masks for the same sample.
  void draw_masks(uint8_t* mask, int layer, DropSite site, int heads, size_t per_head) const;
};

// Forward of global block `layer` from x (N, C) into out (N, C), keeping its activations in `a`.
// redo: the recomputation of Recompute::kFull in backward: reuses the forward's dropout masks
// (draws none) and stops at the MLP's GELU (the backward needs nothing after it).
template <typename T>
void block_forward(const BlockPass<T>& pass, int layer, const BlockTensors<T>& w, BlockActs<T>& a,
                   const T* x, T* out, bool redo);

// Backward of a block whose forward read x: from the gradient of its output in scratch->dres to
// that of x (in place). weights: add its weight gradients into gw now; otherwise (the B of a
// split backward) keep its linear layers' output gradients in a's d_* for block_weights.
template <typename T>
void block_backward(const BlockPass<T>& pass, int layer, const BlockTensors<T>& w,
                    const BlockTensors<T>& gw, BlockActs<T>& a, const T* x, bool weights);

// W of a split backward: the block's linear layers' weight gradients from their inputs (kept by
// the forward) and their outputs' gradients (kept by B), in the order block_backward adds them.
template <typename T>
void block_weights(const BlockPass<T>& pass, const BlockTensors<T>& w, const BlockTensors<T>& gw,
                   const BlockActs<T>& a);

}  // namespace loom::gpt_internal
