#include "loom/infer/hf_export.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "loom/core/check.hpp"
#include "loom/infer/gpt2_vocab.hpp"
#include "loom/io/file_io.hpp"
#include "loom/io/safetensors.hpp"

namespace loom::infer {

namespace fs = std::filesystem;

void export_hf(const GPT& model, const Tokenizer& tokenizer, const std::string& dir) {
  const GPTConfig& c = model.config();
  const Gpt2Vocab vocab = gpt2_vocab(tokenizer, c.vocab_size);
  LOOM_CHECK(!fs::exists(dir), dir, ": already exists");
  fs::create_directories(dir);

  const std::string eot(kEndOfText);
  nlohmann::json config = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", c.vocab_size},
      {"n_positions", c.context_len},
      {"n_ctx", c.context_len},
      {"n_embd", c.d_model},
      {"n_layer", c.n_layer},
      {"n_head", c.n_head},
      {"n_inner", nullptr},  // 4 x n_embd
      {"activation_function", "gelu_new"},
      {"resid_pdrop", c.dropout},
      {"embd_pdrop", c.dropout},
      {"attn_pdrop", c.dropout},
      {"layer_norm_epsilon", 1e-5},
      {"initializer_range", 0.02},
      {"scale_attn_weights", true},
      {"use_cache", true},
      {"tie_word_embeddings", true},
      {"bos_token_id", vocab.eot_id},
      {"eos_token_id", vocab.eot_id},
      {"torch_dtype", "float32"},
      {"loom_tokenizer", tokenizer.name()}};  // read back by train/pretrained.hpp
  // A mixture-of-experts model: its moe_* fields (read back by train/pretrained.hpp; the experts'
  // tensors are in model.safetensors under the names gpt_param_layout gives them).
  if (c.is_moe())
    config.update({{"moe_experts", c.moe_experts},
                   {"moe_top_k", c.moe_top_k},
                   {"moe_every", c.moe_every},
                   {"moe_capacity_factor", c.moe_capacity_factor},
                   {"moe_aux_loss_coef", c.moe_aux_loss_coef},
                   {"moe_z_loss_coef", c.moe_z_loss_coef}});
  write_file_atomic(dir + "/config.json", config.dump(2) + "\n");

  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<float>> zero_biases;
  zero_biases.reserve(c.n_layer);
  for (const ParamInfo& p : model.layout()) {
    tensors.push_back({p.name, "F32", p.shape, model.params() + p.offset});
    const std::string suffix = "attn.c_attn.weight";
    if (!c.qkv_bias && p.name.ends_with(suffix)) {
      zero_biases.emplace_back(3 * c.d_model, 0.0f);
      tensors.push_back({p.name.substr(0, p.name.size() - suffix.size()) + "attn.c_attn.bias", "F32",
                         {3 * c.d_model}, zero_biases.back().data()});
    }
  }
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});

  // {"token": id, ...} in id order, as GPT-2's encoder.json (written directly: an ordered_json
  // object inserts in linear time per key).
  std::string ids = "{";
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    if (id > 0) ids += ',';
    ids += nlohmann::json(vocab.tokens[id]).dump();
    ids += ':';
    ids += std::to_string(id);
  }
  write_file_atomic(dir + "/vocab.json", ids + "}\n");
  std::string merges = "#version: 0.2\n";
  for (const auto& m : vocab.merges) merges += m + "\n";
  write_file_atomic(dir + "/merges.txt", merges);
  const nlohmann::json tok_config = {{"tokenizer_class", "GPT2Tokenizer"},
                                     {"model_max_length", c.context_len},
                                     {"bos_token", eot},
                                     {"eos_token", eot},
                                     {"unk_token", eot},
                                     {"add_prefix_space", false},
                                     {"add_bos_token", false}};
  write_file_atomic(dir + "/tokenizer_config.json", tok_config.dump(2) + "\n");
}

}  // namespace loom::infer
