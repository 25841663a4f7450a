#pragma once
// A Loom GPT-2 as a Hugging Face model directory, what GPT2LMHeadModel.from_pretrained and
// GPT2Tokenizer(Fast).from_pretrained read:
//   config.json            GPT2Config fields (n_embd, n_layer, n_head, n_positions, vocab_size,
//                          layer_norm_epsilon, activation_function "gelu_new", ...; and
//                          "loom_tokenizer": gpt2 or byte, for loading it back)
//   model.safetensors      F32, GPT2LMHeadModel names ("transformer.h.0.attn.c_attn.weight",
//                          Conv1D [in, out]; lm_head tied to wte, not stored), metadata
//                          {"format": "pt"}; a model without q,k,v bias gets a zero one
//   vocab.json, merges.txt the tokenizer as GPT-2's files (see gpt2_vocab.hpp)
//   tokenizer_config.json  GPT2Tokenizer, <|endoftext|> as bos/eos/unk, model_max_length
#include <string>

#include "loom/data/tokenizer.hpp"
#include "loom/model/gpt.hpp"

namespace loom::infer {

// Writes the files into `dir` (created; it must not exist).
void export_hf(const GPT& model, const Tokenizer& tokenizer, const std::string& dir);

}  // namespace loom::infer
