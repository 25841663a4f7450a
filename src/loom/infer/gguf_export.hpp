#pragma once
// A Loom GPT-2 as a GGUF file for llama.cpp's `gpt2` architecture, tokenizer included.
//
// Tensors (ggml dimension order, ne[0] contiguous; C = d_model, V = vocab, T = context):
//   token_embd.weight {C, V}      position_embd.weight {C, T}
//   blk.i.attn_norm.{weight,bias} {C}       blk.i.attn_qkv.weight {C, 3C}   .bias {3C}
//   blk.i.attn_output.weight {C, C} .bias {C} blk.i.ffn_norm.{weight,bias} {C}
//   blk.i.ffn_up.weight {C, 4C}   .bias {4C}  blk.i.ffn_down.weight {4C, C}  .bias {C}
//   output_norm.{weight,bias} {C}   (no output.weight: llama.cpp ties it to token_embd)
// Hugging Face Conv1D weights are stored [in, out]; ggml multiplies by {in, out} = rows of `in`
// values, one per output, so they are transposed. Matrices take the chosen type (f32, f16 or
// q8_0); vectors stay f32, as llama.cpp's own converter writes them. A model without a q,k,v bias
// gets a zero one (llama.cpp's gpt2 requires the tensor).
#include <string>

#include "loom/data/tokenizer.hpp"
#include "loom/infer/gguf_writer.hpp"
#include "loom/model/gpt.hpp"

namespace loom::infer {

// "f32" | "f16" | "q8_0"; anything else is an error naming `flag`.
GgmlType parse_gguf_type(const std::string& text, const std::string& flag);

// Throws loom::Error saying why when llama.cpp could not represent the model in `type` (or at
// all: a mixture-of-experts model).
void export_gguf(const GPT& model, const Tokenizer& tokenizer, GgmlType type,
                 const std::string& name, const std::string& path);

}  // namespace loom::infer
