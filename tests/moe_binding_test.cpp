// bind_moe_tensors: an MoE block's router and experts found in a gpt_param_layout buffer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "error_of.hpp"
#include "loom/model/moe/moe_binding.hpp"

namespace loom::moe {
namespace {

TEST(MoeBinding, PointsAtTheLayoutsOffsetsOfTheBlocksRouterAndExperts) {
  GPTConfig c;
  c.vocab_size = 10;
  c.context_len = 4;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 6;
  c.moe_experts = 4;  // block 1 is the MoE block
  const auto layout = gpt_param_layout(c);
  std::vector<float> buffer(static_cast<size_t>(c.num_params()));
  auto offset_of = [&](const std::string& name) -> size_t {
    for (const auto& p : layout)
      if (p.name == name) return p.offset;
    ADD_FAILURE() << name;
    return 0;
  };
  const MoeTensors<float> t = bind_moe_tensors(layout, 1, buffer.data(), 2, 2);  // experts 2, 3
  EXPECT_EQ(t.router, buffer.data() + offset_of("transformer.h.1.mlp.router.weight"));
  ASSERT_EQ(t.experts.size(), 2u);
  EXPECT_EQ(t.experts[0].fc_w, buffer.data() + offset_of("transformer.h.1.mlp.experts.2.c_fc.weight"));
  EXPECT_EQ(t.experts[0].fc_b, buffer.data() + offset_of("transformer.h.1.mlp.experts.2.c_fc.bias"));
  EXPECT_EQ(t.experts[1].proj_w,
            buffer.data() + offset_of("transformer.h.1.mlp.experts.3.c_proj.weight"));
  EXPECT_EQ(t.experts[1].proj_b, buffer.data() + offset_of("transformer.h.1.mlp.experts.3.c_proj.bias"));
  // Block 0 is dense: it has no router.
  EXPECT_NE(test::error_of([&] { bind_moe_tensors(layout, 0, buffer.data(), 0, 4); })
                .find("no transformer.h.0.mlp.router.weight"),
            std::string::npos);
}

}  // namespace
}  // namespace loom::moe
