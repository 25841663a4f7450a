#pragma once
// The numbers an MoE layer needs, from the model config (gpt_config.hpp's moe_* fields).
#include <cstdint>

#include "loom/model/gpt_config.hpp"

namespace loom::moe {

struct MoeConfig {
  int experts = 0;               // E
  int top_k = 2;                 // k
  float capacity_factor = 1.25f;  // f; 0: dropless
  float aux_loss_coef = 0.01f;   // a
  float z_loss_coef = 0.001f;    // z

  static MoeConfig of(const GPTConfig& c) {
    return {c.moe_experts, c.moe_top_k, c.moe_capacity_factor, c.moe_aux_loss_coef,
            c.moe_z_loss_coef};
  }
  // Assignments each expert takes from `tokens` tokens: ceil(f * tokens * k / E); every
  // assignment (tokens * k) when dropless (f = 0 or `dropless`, as in evaluation).
  int64_t capacity(int64_t tokens, bool dropless) const;
};

}  // namespace loom::moe
