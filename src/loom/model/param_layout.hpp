#pragma once
// Where every parameter lives in the flat parameter buffer (and, at the same offsets, in the flat
// gradient buffer). Names and layouts are Hugging Face GPT2LMHeadModel's, so a checkpoint's
// model.safetensors loads there: Conv1D weights are stored [in, out] row-major; the LM head is
// tied to wte and not stored separately.
//
// Order in the buffer (= order of the table), for the whole model on one rank:
//   transformer.wte.weight            [V, C]
//   transformer.wpe.weight            [T, C]
//   for l in 0..L-1:
//     transformer.h.l.ln_1.weight     [C]        transformer.h.l.ln_1.bias    [C]
//     transformer.h.l.attn.c_attn.weight [C, 3C] transformer.h.l.attn.c_attn.bias [3C] (if qkv_bias)
//     transformer.h.l.attn.c_proj.weight [C, C]  transformer.h.l.attn.c_proj.bias [C]
//     transformer.h.l.ln_2.weight     [C]        transformer.h.l.ln_2.bias    [C]
//     transformer.h.l.mlp.c_fc.weight [C, 4C]    transformer.h.l.mlp.c_fc.bias [4C]
//     transformer.h.l.mlp.c_proj.weight [4C, C]  transformer.h.l.mlp.c_proj.bias [C]
//     (an MoE block, config.is_moe_block(l), has instead of the four mlp tensors:
//      transformer.h.l.mlp.router.weight [C, E]  (bias-free)
//      for e in 0..E-1: transformer.h.l.mlp.experts.e.c_fc.weight [C, 4C], .c_fc.bias [4C],
//                       .c_proj.weight [4C, C], .c_proj.bias [C])
//   transformer.ln_f.weight [C]       transformer.ln_f.bias [C]
// Backward finishes gradients in roughly reverse order (ln_f, h.L-1, ..., h.0, wpe, wte), which
// is what gradient bucketing relies on.
//
// A ModelShard keeps the same order for what it holds (wte if it has the embedding or the head,
// wpe with the embedding, its blocks, ln_f with the head), each tensor cut for tensor parallelism
// as Megatron-LM cuts it (t = tp_size, r = tp_rank, Vp = V padded to a multiple of t):
//   wte [Vp/t, C]        rows r*Vp/t.. (vocab-parallel; rows >= V are padding)
//   c_attn.weight [C, 3C/t], c_attn.bias [3C/t]   columns of heads r*H/t.. in each of q, k and v
//   attn.c_proj.weight [C/t, C]                    the matching input rows (row-parallel)
//   mlp.c_fc.weight [C, 4C/t], mlp.c_fc.bias [4C/t] (column-parallel)
//   mlp.c_proj.weight [4C/t, C]                    (row-parallel)
//   everything else (wpe, LayerNorms, row-parallel biases, the router and the experts) whole on
//   every tp rank.
// Each ParamInfo says which piece of the whole Hugging Face tensor it is (TensorSplit), so a
// checkpoint always holds whole tensors and any layout loads any checkpoint.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "loom/model/gpt_config.hpp"
#include "loom/model/model_shard.hpp"

namespace loom {

// How a local tensor maps into the whole one. Along dimension `dim`, the whole tensor is `groups`
// equal blocks (c_attn: q | k | v; 1 otherwise) and so is the local one; local index i of a
// block is whole index start + i of the same block, for i < valid. Local indices >= valid are
// padding (the vocabulary rows beyond V): zero, never saved.
struct TensorSplit {
  int dim = -1;  // -1: the local tensor is the whole tensor (replicated over the tp ranks)
  int groups = 1;
  int64_t start = 0;
  int64_t valid = 0;
};

struct ParamInfo {
  std::string name;            // Hugging Face name, e.g. "transformer.h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;  // of the local tensor, row-major
  size_t offset = 0;           // in elements, into the flat buffer
  size_t numel = 0;
  bool weight_decay = false;   // true for matrices (incl. embeddings); false for biases, LN gains
  std::vector<int64_t> full_shape;  // of the whole Hugging Face tensor (empty: = shape)
  TensorSplit split;

  bool replicated() const { return split.dim < 0; }
  const std::vector<int64_t>& whole_shape() const { return full_shape.empty() ? shape : full_shape; }
  size_t whole_numel() const;
};

std::vector<ParamInfo> gpt_param_layout(const GPTConfig& config, const ModelShard& shard = {});

// whole (whole_numel elements) <- local piece (numel elements); the rest of `whole` is untouched.
template <typename T>
void copy_to_whole(const ParamInfo& p, const T* local, T* whole);
// local piece <- whole; padding elements of the local tensor are set to 0.
template <typename T>
void copy_from_whole(const ParamInfo& p, const T* whole, T* local);

}  // namespace loom
