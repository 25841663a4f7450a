#pragma once
// Model weights to start from (`loom train --init_from`) or to run (generate, eval, export):
//   - a Hugging Face GPT-2 directory: config.json (GPT2Config: vocab_size, n_positions, n_layer,
//     n_head, n_embd; activation_function gelu_new, layer_norm_epsilon 1e-5 and n_inner null or
//     4 x n_embd if given) with model.safetensors, or the sharded
//     model-0000x-of-0000y.safetensors files named by model.safetensors.index.json
//     ({"weight_map": {tensor: file}}). Tensor names with or without the "transformer." prefix;
//     F32. lm_head.weight, if stored, must equal wte (GPT-2 ties them); the attention-mask
//     buffers (attn.bias, attn.masked_bias) are skipped; any other extra tensor is an error.
//   - a Loom checkpoint: a step_XXXXXX directory or a `latest` file (checkpoint.hpp).
// Weights are whole tensors in the layout of gpt_param_layout(config); a sharded model's ranks
// each take their pieces (parallel::scatter_whole), as a resume does.
#include <string>
#include <vector>

#include "loom/model/gpt_config.hpp"
#include "loom/model/param_layout.hpp"

namespace loom {

// Whether `path` is a Hugging Face model directory (it has config.json and no state.json).
bool is_hf_model_dir(const std::string& path);

struct PretrainedModel {
  std::string dir;        // the HF directory, or the resolved checkpoint directory
  bool hf = false;
  GPTConfig config;       // the shape (a Loom checkpoint: its whole model config)
  std::string tokenizer;  // "gpt2" or "byte": HF config.json's "loom_tokenizer" (export writes
                          // it), else gpt2
};

// Reads the shape and tokenizer of `path` (errors name the file and field).
PretrainedModel read_pretrained(const std::string& path);

// Errors unless `run` has the pretrained shape (vocab_size, context_len, n_layer, n_head,
// d_model, qkv_bias, moe_experts and moe_every); the message names each field that differs with
// both values.
void check_pretrained_shape(const PretrainedModel& pretrained, const GPTConfig& run);

// Copies the weights into `params` (laid out by `layout`, the whole model's), after checking
// every tensor's presence, dtype and shape.
void load_pretrained_params(const PretrainedModel& pretrained, const std::vector<ParamInfo>& layout,
                            float* params);

}  // namespace loom
