#include "loom/model/gpt_config.hpp"

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
}

int64_t GPTConfig::num_params() const {
  const int64_t V = vocab_size, T = context_len, L = n_layer, C = d_model;
  // Per block: ln_1 (2C), c_attn (3C^2 [+3C]), attn.c_proj (C^2 + C), ln_2 (2C),
  // c_fc (4C^2 + 4C), mlp.c_proj (4C^2 + C).
  const int64_t block = 12 * C * C + 10 * C + (qkv_bias ? 3 * C : 0);
  return V * C + T * C + L * block + 2 * C;
}

void to_json(nlohmann::json& j, const GPTConfig& c) {
  j = nlohmann::json{{"vocab_size", c.vocab_size}, {"context_len", c.context_len},
                     {"n_layer", c.n_layer},       {"n_head", c.n_head},
                     {"d_model", c.d_model},       {"dropout", c.dropout},
                     {"qkv_bias", c.qkv_bias}};
}

namespace {

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
      LOOM_CHECK(v.is_number(), "model.dropout must be a number, got ", v.dump());
      c.dropout = v.get<float>();
    } else if (key == "qkv_bias") {
      LOOM_CHECK(v.is_boolean(), "model.qkv_bias must be true or false, got ", v.dump());
      c.qkv_bias = v.get<bool>();
    } else {
      LOOM_FAIL("unknown field model.", key,
                " (known: vocab_size, context_len, n_layer, n_head, d_model, dropout, qkv_bias)");
    }
  }
}

}  // namespace loom
