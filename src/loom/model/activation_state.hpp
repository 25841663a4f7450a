#pragma once
// What an activation set and a workspace hold (ActivationSet, ActivationWorkspace): the buffers
// one forward leaves for its backward and the backward's shared scratch, and the views carved
// out of them. Included by the executors only.
#include <cstdint>
#include <memory>
#include <vector>

#include "loom/core/aligned_buffer.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/moe/moe_layer.hpp"
#include "loom/model/recompute.hpp"

namespace loom::gpt_internal {

// Activations of one block kept for the backward. Under tensor parallelism the attention and MLP
// inner tensors hold this rank's heads / hidden units only: Cl = C/tp, Hl = H/tp, Fl = 4C/tp;
// under sequence parallelism ln1, mid, ln2, the statistics and the row masks (proj, mlp) hold
// the rank's N/tp rows only.
// The linear layers' inputs and outputs (ln1, qkv, atty, mid, ln2, fc, fc_gelu and the block's
// output) live in the set's kept buffer, the rest (statistics, probabilities, masks) in its
// B-only buffers (ActivationState).
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
  // An MoE block's routing, expert activations and backward scratch, and what its forward saw
  // (in the set's `moe`, `moe_stats`; nullptr for a dense block). fc and fc_gelu are unused.
  moe::MoeBuffers<T>* moe;
  moe::MoeStats* moe_stats;
};

// Bump allocator over a flat buffer (base == nullptr: every tensor is nullptr, only `used`
// counts). Every tensor is rounded up to 64 elements, as activation_plan counts them.
template <typename U>
struct Carver {
  U* base;
  size_t used = 0;
  U* take(size_t n) {
    U* p = base ? base + used : nullptr;
    used += carved_elems(n);  // keep every tensor 64-byte aligned
    return p;
  }
};

// What only a forward and its B read: the stage input, LayerNorm statistics, attention
// probabilities, dropout masks, and the head's tensors (logits included; the head's weight
// gradient is taken inside B). A set holds its B-only buffers from its forward to the end of a
// split B, then returns them to its executor's pool for the next forward (no set waiting for W
// holds them); after a fused backward the set keeps them (nothing waits).
template <typename T>
struct BOnlyBuffers {
  AlignedBuffer<T> acts;
  AlignedBuffer<uint8_t> masks;
  size_t bytes() const { return acts.size() * sizeof(T) + masks.size(); }
};

// Everything one forward leaves for its backward (ActivationSet's contents).
template <typename T>
struct ActivationState {
  // The chunk and the modes the set was planned for (by its last forward).
  int planned_chunk = -1;
  bool planned_split = false;
  Recompute planned_recompute = Recompute::kNone;
  AlignedBuffer<T> kept_buf;                // what W needs, and the chunk's output
  std::unique_ptr<BOnlyBuffers<T>> b_only;  // nullptr while the set waits for W
  size_t logits_elems = 0;
  std::vector<BlockActs<T>> blocks;  // the chunk's blocks
  T *resid0 = nullptr, *lnf = nullptr, *lnf_mean = nullptr, *lnf_rstd = nullptr, *logits = nullptr,
    *losses = nullptr, *lse = nullptr;  // resid0: stage input (N, C)
  T* ce_stats = nullptr;  // tp > 1: row max (N), then sum-exp and target logit (2N)
  std::vector<T*> resid_out;  // block's output (N, C; the local rows under sp)
  // Sequence parallelism on a chunk without the head: its output gathered (N, C) for the next
  // stage (nullptr otherwise).
  T* stage_output = nullptr;
  uint8_t* emb_mask = nullptr;
  // Per block of the chunk; used by MoE blocks only. The buffers size themselves (they grow only)
  // and are held for good: an MoE block's backward (B included) needs its routing.
  std::vector<moe::MoeBuffers<T>> moe;
  std::vector<moe::MoeStats> moe_stats;

  // The forward these activations are of: its shape, its dropout (the key drawn from its Rng
  // and the index of its first row's sample) and its tokens and targets.
  int B = 0, Tn = 0;
  // Sequence parallelism ran this forward (resid0, ln_1, mid, ln_2, the blocks' outputs, their
  // statistics and row masks hold the local rows; lnf the gathered ones).
  bool sp = false;
  bool have_targets = false, dropped = false, backward_done = false;
  bool train = false;  // a training forward (MoE capacity applies; dropless otherwise)
  bool weights_pending = false;  // B has run, W not yet
  uint64_t drop_key = 0;
  int64_t drop_first_sample = 0;
  std::vector<int32_t> tokens, targets;

  size_t bytes() const {
    size_t n = kept_buf.size() * sizeof(T) + (b_only ? b_only->bytes() : 0);
    for (const moe::MoeBuffers<T>& b : moe) n += b.bytes();
    return n;
  }
  // The chunk's output: the last block's, or its input without blocks.
  T* output() const { return resid_out.empty() ? resid0 : resid_out.back(); }
};

// The backward's scratch, shared by every set of the executors given the workspace (dbranch is
// also the forward's branch buffer): big enough for every shape seen and carved for the running
// one; dres ends as the gradient of the chunk's input (its local rows under sequence
// parallelism: then gathered into dln, and input_grad points at whichever holds it).
template <typename T>
struct BackwardScratch {
  AlignedBuffer<T> buf;
  T *dres = nullptr, *dln = nullptr, *dqkv = nullptr, *datty = nullptr, *dfc = nullptr,
    *dbranch = nullptr, *att_scratch = nullptr;
  T* ln_grads = nullptr;    // sp: a block's LayerNorm weight gradients, partial (4C)
  T* input_grad = nullptr;  // after a backward: the gradient of the chunk's input (N, C)
  size_t att_scratch_size = 0;
  size_t allocations = 0;  // activation buffers its executors allocated so far
};

}  // namespace loom::gpt_internal
