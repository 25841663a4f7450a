#include "loom/infer/gguf_export.hpp"

#include <map>

#include "loom/core/check.hpp"
#include "loom/infer/gpt2_vocab.hpp"

namespace loom::infer {

namespace {

// general.file_type of llama.cpp (llama_ftype): what most tensors are.
uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;   // ALL_F32
    case GgmlType::F16: return 1;   // MOSTLY_F16
    case GgmlType::Q8_0: return 7;  // MOSTLY_Q8_0
  }
  return 0;
}

class TensorSource {
 public:
  explicit TensorSource(const GPT& m) : model_(m) {
    for (const ParamInfo& p : m.layout()) by_name_[p.name] = &p;
  }
  const ParamInfo* find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  const float* data(const ParamInfo& p) const { return model_.params() + p.offset; }

 private:
  const GPT& model_;
  std::map<std::string, const ParamInfo*> by_name_;
};

}  // namespace

GgmlType parse_gguf_type(const std::string& text, const std::string& flag) {
  if (text == "f32") return GgmlType::F32;
  if (text == "f16") return GgmlType::F16;
  if (text == "q8_0") return GgmlType::Q8_0;
  LOOM_FAIL(flag, ": expected f32, f16 or q8_0, got '", text, "'");
}

void export_gguf(const GPT& model, const Tokenizer& tokenizer, GgmlType type,
                 const std::string& name, const std::string& path) {
  const GPTConfig& c = model.config();
  const uint64_t C = c.d_model;
  LOOM_CHECK(!c.is_moe(), "gguf cannot represent this model: it is a mixture of experts "
             "(moe_experts ", c.moe_experts, ") and llama.cpp's gpt2 architecture has no experts "
             "(export --format hf keeps them)");
  LOOM_CHECK(type != GgmlType::Q8_0 || C % kQ8Block == 0, "q8_0 cannot represent this model: ",
             "llama.cpp quantises rows of d_model (and 4 x d_model) values in blocks of ",
             kQ8Block, ", and d_model = ", C, " is not a multiple of ", kQ8Block,
             " (export f16 or f32 instead)");
  const Gpt2Vocab vocab = gpt2_vocab(tokenizer, c.vocab_size);

  GgufWriter w;
  w.add_string("general.architecture", "gpt2");
  w.add_string("general.name", name);
  w.add_u32("general.file_type", file_type(type));
  w.add_u32("gpt2.context_length", c.context_len);
  w.add_u32("gpt2.embedding_length", c.d_model);
  w.add_u32("gpt2.feed_forward_length", 4 * c.d_model);
  w.add_u32("gpt2.block_count", c.n_layer);
  w.add_u32("gpt2.attention.head_count", c.n_head);
  w.add_f32("gpt2.attention.layer_norm_epsilon", 1e-5f);
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "gpt-2");
  w.add_strings("tokenizer.ggml.tokens", vocab.tokens);
  std::vector<int32_t> types;  // llama_token_type: 1 normal, 3 control, 5 unused
  for (TokenKind k : vocab.kinds) types.push_back(k == TokenKind::Normal ? 1 : k == TokenKind::Control ? 3 : 5);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", vocab.merges);
  w.add_u32("tokenizer.ggml.bos_token_id", vocab.eot_id);
  w.add_u32("tokenizer.ggml.eos_token_id", vocab.eot_id);
  w.add_bool("tokenizer.ggml.add_bos_token", false);

  const TensorSource src(model);
  auto get = [&](const std::string& hf) -> const ParamInfo& {
    const ParamInfo* p = src.find(hf);
    LOOM_CHECK(p != nullptr, "export: the model has no tensor ", hf);
    return *p;
  };
  auto vector = [&](const std::string& gg, const std::string& hf) {
    const ParamInfo& p = get(hf);
    w.add_tensor(gg, {p.numel}, GgmlType::F32, encode_tensor(src.data(p), p.numel, GgmlType::F32));
  };
  // A matrix stored one output per row already ([rows, cols] = ggml {cols, rows}).
  auto rows = [&](const std::string& gg, const std::string& hf) {
    const ParamInfo& p = get(hf);
    const uint64_t r = p.shape[0], cols = p.shape[1];
    w.add_tensor(gg, {cols, r}, type, encode_tensor(src.data(p), p.numel, type));
  };
  // A Conv1D weight [in, out]: transposed to one output per row.
  auto conv1d = [&](const std::string& gg, const std::string& hf) {
    const ParamInfo& p = get(hf);
    const uint64_t in = p.shape[0], out = p.shape[1];
    std::vector<float> t(p.numel);
    const float* x = src.data(p);
    for (uint64_t i = 0; i < in; ++i)
      for (uint64_t o = 0; o < out; ++o) t[o * in + i] = x[i * out + o];
    w.add_tensor(gg, {in, out}, type, encode_tensor(t.data(), t.size(), type));
  };

  rows("token_embd.weight", "transformer.wte.weight");
  rows("position_embd.weight", "transformer.wpe.weight");
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".", b = "blk." + std::to_string(l) + ".";
    vector(b + "attn_norm.weight", h + "ln_1.weight");
    vector(b + "attn_norm.bias", h + "ln_1.bias");
    conv1d(b + "attn_qkv.weight", h + "attn.c_attn.weight");
    if (src.find(h + "attn.c_attn.bias") != nullptr) {
      vector(b + "attn_qkv.bias", h + "attn.c_attn.bias");
    } else {
      const std::vector<float> zeros(3 * C, 0.0f);
      w.add_tensor(b + "attn_qkv.bias", {3 * C}, GgmlType::F32, encode_tensor(zeros.data(), zeros.size(), GgmlType::F32));
    }
    conv1d(b + "attn_output.weight", h + "attn.c_proj.weight");
    vector(b + "attn_output.bias", h + "attn.c_proj.bias");
    vector(b + "ffn_norm.weight", h + "ln_2.weight");
    vector(b + "ffn_norm.bias", h + "ln_2.bias");
    conv1d(b + "ffn_up.weight", h + "mlp.c_fc.weight");
    vector(b + "ffn_up.bias", h + "mlp.c_fc.bias");
    conv1d(b + "ffn_down.weight", h + "mlp.c_proj.weight");
    vector(b + "ffn_down.bias", h + "mlp.c_proj.bias");
  }
  vector("output_norm.weight", "transformer.ln_f.weight");
  vector("output_norm.bias", "transformer.ln_f.bias");
  w.write(path);
}

}  // namespace loom::infer
