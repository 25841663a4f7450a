#pragma once
// Shape of a GPT-2 family model. JSON field names are the ones configs/*.json use.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>

namespace loom {

struct GPTConfig {
  int vocab_size = 50257;
  int context_len = 1024;  // maximum sequence length (number of learned positions)
  int n_layer = 12;
  int n_head = 12;
  int d_model = 768;
  float dropout = 0.0f;  // applied to embeddings, attention probabilities and residual branches
  bool qkv_bias = true;  // bias on the fused q,k,v projection (GPT-2 has one)

  // Mixture of experts (issue 19; the layer is model/moe/moe_layer.hpp). 0 experts: dense.
  int moe_experts = 0;                // E experts per MoE block, each a GPT-2 MLP
  int moe_top_k = 2;                  // experts per token (not the sampling top_k)
  int moe_every = 2;                  // block i is an MoE block when i % moe_every == moe_every - 1
  float moe_capacity_factor = 1.25f;  // capacity ceil(f * tokens * k / E) per expert; 0: dropless
  float moe_aux_loss_coef = 0.01f;    // Switch Transformer load-balancing loss
  float moe_z_loss_coef = 0.001f;     // ST-MoE router z-loss

  bool is_moe() const { return moe_experts > 0; }
  // Whether block `layer` replaces its MLP by experts.
  bool is_moe_block(int layer) const { return is_moe() && layer % moe_every == moe_every - 1; }

  // Throws loom::Error naming the field if a value is out of range (e.g. d_model % n_head != 0).
  void validate() const;
  int64_t num_params() const;  // as laid out by gpt_param_layout (tied LM head counted once)
};

// {"vocab_size": .., "context_len": .., "n_layer": .., "n_head": .., "d_model": .., "dropout": ..,
//  "qkv_bias": .., and for an MoE model "moe_experts", "moe_top_k", "moe_every",
//  "moe_capacity_factor", "moe_aux_loss_coef", "moe_z_loss_coef"}. A dense model's JSON has no
// moe fields, so it stays what it was before MoE existed (checkpoints compare it on resume).
// Reading: missing fields keep their defaults, unknown or mistyped fields are errors naming the
// field.
void to_json(nlohmann::json& j, const GPTConfig& c);
// Every field, the moe ones included even for a dense model: the model flags and their --help.
nlohmann::json all_fields_json(const GPTConfig& c);
void from_json(const nlohmann::json& j, GPTConfig& c);

}  // namespace loom
