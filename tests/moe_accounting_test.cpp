// Total and active parameters and per-token FLOPs of MoE blocks (model/moe/moe_accounting).
#include <gtest/gtest.h>

#include "loom/model/moe/moe_accounting.hpp"
#include "loom/model/param_layout.hpp"

namespace loom::moe {
namespace {

TEST(MoeAccounting, Gpt2SmallWithEightExpertsTopTwo) {
  GPTConfig c;  // gpt2-small: C 768, 12 layers
  c.moe_experts = 8;
  c.moe_top_k = 2;  // moe_every 2: blocks 1, 3, .., 11 (6 of them)
  const int64_t C = 768, mlp = 8 * C * C + 5 * C;
  const ParamCount p = param_count(c);
  EXPECT_EQ(p.total, 124439808 + 6 * (C * 8 + 7 * mlp));
  EXPECT_EQ(p.active, 124439808 + 6 * (C * 8 + 1 * mlp));
  size_t laid_out = 0;
  for (const auto& info : gpt_param_layout(c)) laid_out += info.numel;
  EXPECT_EQ(static_cast<int64_t>(laid_out), p.total);

  const MlpCount dense = mlp_count(c, 0), sparse = mlp_count(c, 1);
  EXPECT_EQ(dense.total_params, mlp);
  EXPECT_EQ(dense.active_params, mlp);
  EXPECT_EQ(dense.forward_flops_per_token, 16 * C * C);
  EXPECT_EQ(sparse.total_params, C * 8 + 8 * mlp);
  EXPECT_EQ(sparse.active_params, C * 8 + 2 * mlp);
  EXPECT_EQ(sparse.forward_flops_per_token, 2 * C * 8 + 2 * 16 * C * C);
}

TEST(MoeAccounting, DenseModelIsAllActive) {
  const GPTConfig c;
  const ParamCount p = param_count(c);
  EXPECT_EQ(p.total, 124439808);
  EXPECT_EQ(p.active, 124439808);
}

TEST(MoeAccounting, TopKOfKExpertsIsAllActive) {
  GPTConfig c;
  c.moe_experts = 4;
  c.moe_top_k = 4;
  c.moe_every = 1;
  const ParamCount p = param_count(c);
  EXPECT_EQ(p.active, p.total);
  EXPECT_GT(p.total, GPTConfig{}.num_params());
}

}  // namespace
}  // namespace loom::moe
