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

  // Throws loom::Error naming the field if a value is out of range (e.g. d_model % n_head != 0).
  void validate() const;
  int64_t num_params() const;  // as laid out by gpt_param_layout (tied LM head counted once)
};

// {"vocab_size": .., "context_len": .., "n_layer": .., "n_head": .., "d_model": .., "dropout": ..,
//  "qkv_bias": ..}. Reading: missing fields keep their defaults, unknown or mistyped fields are
// errors naming the field.
void to_json(nlohmann::json& j, const GPTConfig& c);
void from_json(const nlohmann::json& j, GPTConfig& c);

}  // namespace loom
