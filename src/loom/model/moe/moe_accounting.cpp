#include "loom/model/moe/moe_accounting.hpp"

namespace loom::moe {

MlpCount mlp_count(const GPTConfig& c, int layer) {
  const int64_t C = c.d_model;
  const int64_t mlp = 8 * C * C + 5 * C, mlp_flops = 16 * C * C;
  if (!c.is_moe_block(layer)) return {mlp, mlp, mlp_flops};
  const int64_t E = c.moe_experts, k = c.moe_top_k, router = C * E;
  return {router + E * mlp, router + k * mlp, 2 * router + k * mlp_flops};
}

ParamCount param_count(const GPTConfig& c) {
  ParamCount p;
  p.total = p.active = c.num_params();
  for (int l = 0; l < c.n_layer; ++l) {
    const MlpCount m = mlp_count(c, l);
    p.active -= m.total_params - m.active_params;
  }
  return p;
}

}  // namespace loom::moe
