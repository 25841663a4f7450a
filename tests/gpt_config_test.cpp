// GPTConfig (validation, JSON) and the parameter layout.
#include <gtest/gtest.h>

#include "error_of.hpp"

#include <nlohmann/json.hpp>
#include <string>

#include "loom/core/check.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/model/param_layout.hpp"

namespace loom {
namespace {

using test::error_of;

TEST(GPTConfig, Gpt2SmallHas124439808Parameters) {
  const GPTConfig c;  // defaults are gpt2-small
  EXPECT_EQ(c.num_params(), 124439808);
  const auto layout = gpt_param_layout(c);
  size_t total = 0;
  for (const auto& p : layout) total += p.numel;
  EXPECT_EQ(total, 124439808u);
  GPTConfig nb = c;
  nb.qkv_bias = false;
  EXPECT_EQ(nb.num_params(), 124439808 - 12 * 3 * 768);
}

TEST(GPTConfig, JsonRoundTrip) {
  GPTConfig c;
  c.vocab_size = 100;
  c.context_len = 32;
  c.n_layer = 3;
  c.n_head = 4;
  c.d_model = 64;
  c.dropout = 0.25f;
  c.qkv_bias = false;
  const nlohmann::json j = c;
  const GPTConfig d = j.get<GPTConfig>();
  EXPECT_EQ(d.vocab_size, 100);
  EXPECT_EQ(d.context_len, 32);
  EXPECT_EQ(d.n_layer, 3);
  EXPECT_EQ(d.n_head, 4);
  EXPECT_EQ(d.d_model, 64);
  EXPECT_EQ(d.dropout, 0.25f);
  EXPECT_FALSE(d.qkv_bias);
}

TEST(GPTConfig, MissingFieldsKeepDefaults) {
  const GPTConfig d = nlohmann::json{{"n_layer", 2}}.get<GPTConfig>();
  EXPECT_EQ(d.n_layer, 2);
  EXPECT_EQ(d.d_model, 768);
}

TEST(GPTConfig, UnknownAndMistypedFieldsAreErrorsNamingTheField) {
  EXPECT_NE(error_of([] { nlohmann::json{{"n_layers", 2}}.get<GPTConfig>(); }).find("n_layers"),
            std::string::npos);
  EXPECT_NE(error_of([] { nlohmann::json{{"d_model", "768"}}.get<GPTConfig>(); }).find("d_model"),
            std::string::npos);
  EXPECT_NE(error_of([] { nlohmann::json{{"n_head", 1.5}}.get<GPTConfig>(); }).find("n_head"),
            std::string::npos);
  EXPECT_NE(error_of([] { nlohmann::json{{"qkv_bias", 1}}.get<GPTConfig>(); }).find("qkv_bias"),
            std::string::npos);
}

TEST(GPTConfig, ValidateNamesTheField) {
  GPTConfig c;
  c.n_head = 5;  // 768 % 5 != 0
  EXPECT_NE(error_of([&] { c.validate(); }).find("n_head"), std::string::npos);
  c = GPTConfig{};
  c.dropout = 1.0f;
  EXPECT_NE(error_of([&] { c.validate(); }).find("dropout"), std::string::npos);
  c = GPTConfig{};
  c.vocab_size = 0;
  EXPECT_NE(error_of([&] { c.validate(); }).find("vocab_size"), std::string::npos);
}

TEST(ParamLayout, NamesShapesAndContiguousOffsets) {
  GPTConfig c;
  c.vocab_size = 10;
  c.context_len = 4;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 6;
  for (bool bias : {true, false}) {
    c.qkv_bias = bias;
    const auto layout = gpt_param_layout(c);
    ASSERT_EQ(layout.size(), 2 + 2 * (bias ? 12u : 11u) + 2);
    EXPECT_EQ(layout[0].name, "transformer.wte.weight");
    EXPECT_EQ(layout[0].shape, (std::vector<int64_t>{10, 6}));
    EXPECT_EQ(layout[1].name, "transformer.wpe.weight");
    EXPECT_EQ(layout[4].name, "transformer.h.0.attn.c_attn.weight");
    EXPECT_EQ(layout[4].shape, (std::vector<int64_t>{6, 18}));
    EXPECT_EQ(layout[5].name, bias ? "transformer.h.0.attn.c_attn.bias"
                                   : "transformer.h.0.attn.c_proj.weight");
    EXPECT_EQ(layout.back().name, "transformer.ln_f.bias");
    size_t offset = 0;
    for (const auto& p : layout) {
      EXPECT_EQ(p.offset, offset) << p.name;
      size_t n = 1;
      for (auto d : p.shape) n *= d;
      EXPECT_EQ(p.numel, n) << p.name;
      EXPECT_EQ(p.weight_decay, p.shape.size() == 2) << p.name;
      offset += p.numel;
    }
    EXPECT_EQ(static_cast<int64_t>(offset), c.num_params());
  }
}

}  // namespace
}  // namespace loom
