#pragma once
// Parameters and FLOPs of a model's MLP halves when some blocks are MoE blocks: what each token
// uses (k experts and the router) against what the model holds (E experts), for the planner and
// the memory model. Pure functions of the config.
#include <cstdint>

#include "loom/model/gpt_config.hpp"

namespace loom::moe {

// One block's MLP half (C = d_model; an MLP is c_fc [C,4C] + [4C] and c_proj [4C,C] + [C]).
struct MlpCount {
  int64_t total_params = 0;   // dense: one MLP; MoE: router C E + E MLPs
  int64_t active_params = 0;  // used by one token: dense one MLP; MoE: router + k MLPs
  // Matmul FLOPs of one token's forward (2 per multiply-add): dense 16 C^2; MoE 2 C E (router)
  // + k 16 C^2, as if no assignment were dropped.
  int64_t forward_flops_per_token = 0;
};
MlpCount mlp_count(const GPTConfig& c, int layer);

// The whole model: total = GPTConfig::num_params(); active = what one token's forward uses.
struct ParamCount {
  int64_t total = 0;
  int64_t active = 0;
};
ParamCount param_count(const GPTConfig& c);

}  // namespace loom::moe
