#pragma once
// One transformer block's forward and backward, in two halves: the attention half (ln_1,
// c_attn, attention, c_proj, residual) and the MLP half (ln_2, c_fc, GELU, c_proj, residual).
// A chunk executor runs its blocks through these; a block variant replaces a half (a
// mixture-of-experts MLP), and a sequence-parallel layout changes the tp collectives around the
// LayerNorm / residual regions (BlockPass::reduce) here, in one place.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

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
//
// Sequence parallelism (sp): the LayerNorm / dropout / residual regions (a block's input, ln_1,
// mid, ln_2 and output, their statistics and masks, the residual stream's gradient dres) hold
// this rank's local_rows() = N / tp rows, from first_row(); the attention and MLP between them
// hold all N rows. A row-parallel layer's partial sums are reduce-scattered to the local rows
// (reduce_rows: an all-reduce without sp) and a LayerNorm's output is all-gathered before the
// column-parallel layer that reads it (gather_rows: nothing without sp); backward runs the
// conjugates (the branch gradient gathered, the LayerNorm input gradient reduce-scattered) and
// gathers each LayerNorm output again for its layer's weight gradient. The LayerNorms' weight
// gradients, partial over the local rows, are summed over tp (begin/add_ln_grads).
template <typename T>
struct BlockPass {
  int B, Tn;             // rows and tokens per row; N = B x Tn
  int C, Cl, Hl, Fl;     // widths: model, local attention, local heads, local MLP
  int tp_rank;
  TensorParallelGroup* tp;  // nullptr: tp 1
  bool sp;                  // sequence parallelism (tp > 1, Tn a multiple of tp)
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
  // Rows of the LayerNorm / dropout / residual regions and the first one's index in rows().
  int local_rows() const { return sp ? rows() / tp->size() : rows(); }
  size_t first_row() const { return sp ? static_cast<size_t>(tp_rank) * local_rows() : 0; }
  // This rank's rows of a (rows(), C) tensor.
  T* local(T* all) const { return all + first_row() * C; }
  ProfileScope timed(Kernel k, bool backward) const { return ProfileScope(profile, k, backward); }
  // The tp all-reduce of partial sums (a no-op at tp 1).
  void reduce(T* data, size_t n) const {
    if (tp) tp->allreduce_sum(data, n);
  }
  // Partial sums (rows(), C) of a row-parallel layer in `all` -> their sum's local rows, in
  // place (local(all)): reduce-scattered under sp, all-reduced (every row) otherwise.
  T* reduce_rows(T* all) const;
  // This rank's rows `mine` (local_rows(), C) -> all of them in `all` (rows(), C), for a
  // column-parallel layer (mine may be local(all)). Without sp: mine itself, nothing moves.
  T* gather_rows(T* mine, T* all) const;
  // Where a LayerNorm's weight (bias) gradient goes: `model` without sp; under sp slot 0..3 of
  // the scratch's ln_grads (C each), zeroed by begin_ln_grads and summed over tp and added to
  // the model's gradients by add_ln_grads (each slot i into dst[i]).
  T* ln_grad(T* model, int slot) const { return sp ? scratch->ln_grads + slot * C : model; }
  void begin_ln_grads() const;
  void add_ln_grads(std::initializer_list<T*> dst) const;
  // f(sample, position, count, local row) for each run of this rank's rows within one sample:
  // rows [local row, + count) are positions [position, + count) of sample `sample`.
  template <typename F>
  void for_each_sample_run(F&& f) const {
    const size_t r0 = first_row(), r1 = r0 + local_rows();
    for (size_t r = r0; r < r1;) {
      const size_t b = r / Tn, end = std::min(r1, (b + 1) * Tn);
      f(static_cast<int>(b), static_cast<int>(r - b * Tn), static_cast<int>(end - r), r - r0);
      r = end;
    }
  }
  // The forward's dropout masks of one site of global layer `layer` (-1: the embedding), laid
  // out (B, heads, per_head): each (sample, head) gets the mask that the key, the sample's index
  // drop_first_sample + b, the layer, the site and the global head (tp rank x heads + h for the
  // attention) define, so every layout draws the same masks for the same sample.
  void draw_masks(uint8_t* mask, int layer, DropSite site, int heads, size_t per_head) const;
  // The masks of a residual-stream site (the embedding's, a residual branch's: one per sample,
  // Tn x C) for this rank's rows (local_rows(), C): the slices of those masks.
  void draw_row_masks(uint8_t* mask, int layer, DropSite site) const;

 private:
  // The seed of the mask of (sample b of the batch, layer, site, global head).
  uint64_t mask_seed(int b, int layer, DropSite site, int head) const;
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
