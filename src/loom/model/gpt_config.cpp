#include "loom/model/gpt_config.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "loom/core/check.hpp"

namespace loom {

void GPTConfig::validate() const {
  LOOM_CHECK(vocab_size > 0, "model.vocab_size must be > 0, got ", vocab_size);
  LOOM_CHECK(context_len > 0, "model.context_len must be > 0, got ", context_len);
  LOOM_CHECK(n_layer > 0, "model.n_layer must be > 0, got ", n_layer);
  LOOM_CHECK(n_head > 0, "model.n_head must be > 0, got ", n_head);
  LOOM_CHECK(d_model > 0, "model.d_model must be > 0, got ", d_model);
  LOOM_CHECK(d_model % n_head == 0, "model.d_model (", d_model, ") must be divisible by model.n_head (",
             n_head, ")");
  LOOM_CHECK(dropout >= 0.0f && dropout < 1.0f, "model.dropout must be in [0, 1), got ", dropout);
  LOOM_CHECK(moe_experts >= 0, "model.moe_experts must be >= 0 (0: dense), got ", moe_experts);
  LOOM_CHECK(moe_every >= 1, "model.moe_every must be >= 1 (1: every block is an MoE block), got ",
             moe_every);
  LOOM_CHECK(std::isfinite(moe_capacity_factor) && moe_capacity_factor >= 0.0f,
             "model.moe_capacity_factor must be >= 0 (0: dropless), got ", moe_capacity_factor);
  LOOM_CHECK(std::isfinite(moe_aux_loss_coef) && moe_aux_loss_coef >= 0.0f,
             "model.moe_aux_loss_coef must be >= 0, got ", moe_aux_loss_coef);
  LOOM_CHECK(std::isfinite(moe_z_loss_coef) && moe_z_loss_coef >= 0.0f,
             "model.moe_z_loss_coef must be >= 0, got ", moe_z_loss_coef);
  if (!is_moe()) return;
  LOOM_CHECK(moe_top_k >= 1 && moe_top_k <= moe_experts, "model.moe_top_k must be in [1, moe_experts = ",
             moe_experts, "], got ", moe_top_k);
  LOOM_CHECK(moe_every <= n_layer, "model.moe_every (", moe_every, ") must be <= n_layer (", n_layer,
             "), or no block is an MoE block");
}

int64_t GPTConfig::num_params() const {
  const int64_t V = vocab_size, T = context_len, L = n_layer, C = d_model;
  // Per block: ln_1 (2C), c_attn (3C^2 [+3C]), attn.c_proj (C^2 + C), ln_2 (2C),
  // c_fc (4C^2 + 4C), mlp.c_proj (4C^2 + C).
  const int64_t mlp = 8 * C * C + 5 * C;
  const int64_t block = 4 * C * C + 5 * C + mlp + (qkv_bias ? 3 * C : 0);
  // An MoE block has E MLPs and a router (C x E) in place of its one MLP.
  int64_t moe_blocks = 0;
  for (int l = 0; l < n_layer; ++l) moe_blocks += is_moe_block(l);
  const int64_t moe_extra = moe_blocks * (C * moe_experts + (moe_experts - 1) * mlp);
  return V * C + T * C + L * block + moe_extra + 2 * C;
}

nlohmann::json all_fields_json(const GPTConfig& c) {
  return nlohmann::json{{"vocab_size", c.vocab_size},
                        {"context_len", c.context_len},
                        {"n_layer", c.n_layer},
                        {"n_head", c.n_head},
                        {"d_model", c.d_model},
                        {"dropout", c.dropout},
                        {"qkv_bias", c.qkv_bias},
                        {"moe_experts", c.moe_experts},
                        {"moe_top_k", c.moe_top_k},
                        {"moe_every", c.moe_every},
                        {"moe_capacity_factor", c.moe_capacity_factor},
                        {"moe_aux_loss_coef", c.moe_aux_loss_coef},
                        {"moe_z_loss_coef", c.moe_z_loss_coef}};
}

void to_json(nlohmann::json& j, const GPTConfig& c) {
  j = all_fields_json(c);
  if (c.is_moe()) return;
  for (const char* key : {"moe_experts", "moe_top_k", "moe_every", "moe_capacity_factor",
                          "moe_aux_loss_coef", "moe_z_loss_coef"})
    j.erase(key);
}

namespace {

float read_float(const std::string& key, const nlohmann::json& v) {
  LOOM_CHECK(v.is_number(), "model.", key, " must be a number, got ", v.dump());
  return v.get<float>();
}

int read_int(const std::string& key, const nlohmann::json& v) {
  LOOM_CHECK(v.is_number_integer(), "model.", key, " must be an integer, got ", v.dump());
  const int64_t x = v.get<int64_t>();
  LOOM_CHECK(x >= INT32_MIN && x <= INT32_MAX, "model.", key, " is out of range: ", x);
  return static_cast<int>(x);
}

}  // namespace

void from_json(const nlohmann::json& j, GPTConfig& c) {
  LOOM_CHECK(j.is_object(), "model config must be a JSON object, got ", j.dump());
  for (const auto& [key, v] : j.items()) {
    if (key == "vocab_size") {
      c.vocab_size = read_int(key, v);
    } else if (key == "context_len") {
      c.context_len = read_int(key, v);
    } else if (key == "n_layer") {
      c.n_layer = read_int(key, v);
    } else if (key == "n_head") {
      c.n_head = read_int(key, v);
    } else if (key == "d_model") {
      c.d_model = read_int(key, v);
    } else if (key == "dropout") {
      c.dropout = read_float(key, v);
    } else if (key == "qkv_bias") {
      LOOM_CHECK(v.is_boolean(), "model.qkv_bias must be true or false, got ", v.dump());
      c.qkv_bias = v.get<bool>();
    } else if (key == "moe_experts") {
      c.moe_experts = read_int(key, v);
    } else if (key == "moe_top_k") {
      c.moe_top_k = read_int(key, v);
    } else if (key == "moe_every") {
      c.moe_every = read_int(key, v);
    } else if (key == "moe_capacity_factor") {
      c.moe_capacity_factor = read_float(key, v);
    } else if (key == "moe_aux_loss_coef") {
      c.moe_aux_loss_coef = read_float(key, v);
    } else if (key == "moe_z_loss_coef") {
      c.moe_z_loss_coef = read_float(key, v);
    } else {
      LOOM_FAIL("unknown field model.", key,
                " (known: vocab_size, context_len, n_layer, n_head, d_model, dropout, qkv_bias, "
                "moe_experts, moe_top_k, moe_every, moe_capacity_factor, moe_aux_loss_coef, "
                "moe_z_loss_coef)");
    }
  }
}

}  // namespace loom
