#pragma once
// The activation memory of a GPT stage, by category: one pure function of the model's shape, the
// piece of it a rank runs (blocks, embedding, head, tp) and the forward's shape (rows, sequence,
// recomputation, split backward, threads). ChunkExecutor allocates activation sets from it (and
// checks that the tensors it carves out of them add up to it), `loom memory` (train/memory_model)
// and the planner (parallel/planner) predict activation memory with it: one formula, three users.
//
// Every tensor is carved out of a flat buffer rounded up to 64 elements (64-byte aligned), so the
// sizes here are sums of rounded tensors. Widths under tensor parallelism: C = d_model (the
// residual stream and LayerNorm outputs stay whole), Cl = C/tp, Hl = n_head/tp, Fl = 4C/tp and the
// vocab-parallel Vl = padded_vocab/tp (tp 1: the vocabulary). Rows: N = batch x seq in the
// tensor-parallel regions (attention, MLP, logits); under sequence parallelism the LayerNorm,
// dropout and residual regions hold Ns = N/tp rows (N otherwise).
#include <cstddef>

#include "loom/model/gpt_config.hpp"
#include "loom/model/recompute.hpp"

namespace loom {

// What one activation set is planned for.
struct ActivationShape {
  int blocks = 0;          // blocks of the chunk (a pipeline stage's, or the whole model's)
  int first_block = 0;     // the global index of its first (which of them are MoE blocks)
  bool embedding = true;   // the chunk starts with the embedding (its dropout mask)
  bool head = true;        // the chunk ends with ln_f, the LM head and the loss
  int tp = 1;              // tensor-parallel ranks
  int batch = 1, seq = 1;  // rows (sequences) and tokens per row of one (micro-)batch
  Recompute recompute = Recompute::kNone;
  // B then W (zero-bubble schedules): the same buffers (B writes the linear layers' output
  // gradients over activations it is done with), but a set waiting for W holds only `kept`.
  bool split_backward = false;
  // Megatron sequence parallelism over the tp ranks (tp > 1, seq a multiple of tp; not with the
  // split backward).
  bool sequence_parallel = false;
  int threads = 1;         // OpenMP threads (the attention's scratch is per thread)
  size_t elem_bytes = 4;   // sizeof the model's scalar (float; double in gradient checks)
};

// Bytes by category. A set's own buffers: `kept` (what W needs: each block's linear layers'
// inputs and outputs and its output; held from the forward to W) and its B-only buffers (held
// from the forward to B: the stage input, statistics, attention probabilities, the recomputed
// block, the head's tensors, dropout masks). The model's shared backward scratch is one per model,
// whatever the number of sets.
struct ActivationBytes {
  size_t kept_per_block = 0;    // ln_1, qkv, attention output, mid, ln_2, c_fc, GELU, block output
                                // (kFull: the block output only)
  size_t b_only_per_block = 0;  // LayerNorm statistics, attention probabilities (not under
                                // recomputation: they are shared)
  size_t masks_per_block = 0;   // dropout masks (uint8): attention, both residual branches
  size_t stage_input = 0;       // the residual stream entering the chunk (B, T, C)
  size_t embedding_mask = 0;    // the embedding's dropout mask
  size_t recomputed = 0;        // shared by the blocks: kFull a whole block, kSelective att
  size_t head = 0;              // ln_f output (gathered under sequence parallelism) and
                                // statistics, losses, lse, tp's CE statistics
  size_t logits = 0;            // (B, T, Vl)
  size_t stage_output = 0;      // sequence parallelism, a chunk without the head: its output
                                // gathered (B, T, C) for the next pipeline stage
  size_t scratch = 0;           // the model's backward scratch (shared by every set)
  // An MoE block's routing, expert activations and backward scratch (moe::moe_buffer_bytes),
  // held by the set for good, besides the dense block's tensors it carves (fc, fc_gelu unused).
  size_t moe_per_block = 0;
  int moe_blocks = 0;
  int blocks = 0;
  bool split_backward = false;

  size_t kept() const { return kept_per_block * blocks; }
  // The set's B-only activations (its `acts` buffer) and masks.
  size_t b_only() const {
    return b_only_per_block * blocks + stage_input + recomputed + head + logits + stage_output;
  }
  size_t masks() const { return masks_per_block * blocks + embedding_mask; }
  size_t moe() const { return moe_per_block * moe_blocks; }
  // A set between its forward and its B.
  size_t set() const { return kept() + b_only() + masks() + moe(); }
  // A set after its B: waiting for W under a split backward (its B-only buffers went back to the
  // model's pool), everything after a fused one (the set keeps its buffers for the next forward).
  size_t after_b() const { return split_backward ? kept() + moe() : set(); }
  // A runner of one set: ModelRunner::activation_bytes().
  size_t total() const { return set() + scratch; }
};

// Throws loom::Error for a shape no model runs (no rows, seq over context_len, tp not dividing
// n_head, full recomputation with the split backward, sequence parallelism without tp, with seq
// not a multiple of tp or with the split backward).
ActivationBytes activation_plan(const GPTConfig& config, const ActivationShape& shape);

// Elements a tensor of n elements takes in a carved buffer: n rounded up to 64.
constexpr size_t carved_elems(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace loom
