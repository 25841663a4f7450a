#pragma once
// Where every parameter lives in the flat parameter buffer (and, at the same offsets, in the flat
// gradient buffer). Names and layouts are Hugging Face GPT2LMHeadModel's, so a checkpoint's
// model.safetensors loads there: Conv1D weights are stored [in, out] row-major; the LM head is
// tied to wte and not stored separately.
//
// Order in the buffer (= order of the table):
//   transformer.wte.weight            [V, C]
//   transformer.wpe.weight            [T, C]
//   for l in 0..L-1:
//     transformer.h.l.ln_1.weight     [C]        transformer.h.l.ln_1.bias    [C]
//     transformer.h.l.attn.c_attn.weight [C, 3C] transformer.h.l.attn.c_attn.bias [3C] (if qkv_bias)
//     transformer.h.l.attn.c_proj.weight [C, C]  transformer.h.l.attn.c_proj.bias [C]
//     transformer.h.l.ln_2.weight     [C]        transformer.h.l.ln_2.bias    [C]
//     transformer.h.l.mlp.c_fc.weight [C, 4C]    transformer.h.l.mlp.c_fc.bias [4C]
//     transformer.h.l.mlp.c_proj.weight [4C, C]  transformer.h.l.mlp.c_proj.bias [C]
//   transformer.ln_f.weight [C]       transformer.ln_f.bias [C]
// Backward finishes gradients in roughly reverse order (ln_f, h.L-1, ..., h.0, wpe, wte), which
// is what gradient bucketing relies on.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "loom/model/gpt_config.hpp"

namespace loom {

struct ParamInfo {
  std::string name;            // Hugging Face name, e.g. "transformer.h.3.attn.c_attn.weight"
  std::vector<int64_t> shape;  // row-major
  size_t offset = 0;           // in elements, into the flat buffer
  size_t numel = 0;
  bool weight_decay = false;   // true for matrices (incl. embeddings); false for biases, LN gains
};

std::vector<ParamInfo> gpt_param_layout(const GPTConfig& config);

}  // namespace loom
