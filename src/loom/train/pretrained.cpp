#include "loom/train/pretrained.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "loom/core/check.hpp"
#include "loom/core/json_input.hpp"
#include "loom/train/checkpoint.hpp"
#include "loom/io/safetensors.hpp"

namespace loom {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kPrefix = "transformer.";

int int_field(const nlohmann::json& j, const char* key, const std::string& origin) {
  LOOM_CHECK(j.contains(key) && j[key].is_number_integer(), origin, ": field ", key,
             " missing or not an integer");
  return j[key].get<int>();
}

GPTConfig hf_config(const std::string& dir) {
  const std::string origin = dir + "/config.json";
  const nlohmann::json j = read_json_file(origin);
  LOOM_CHECK(j.is_object(), origin, ": not a JSON object");
  LOOM_CHECK(j.value("model_type", "gpt2") == "gpt2", origin, ": model_type ", j["model_type"].dump(),
             ", only gpt2 is supported");
  GPTConfig c;
  c.vocab_size = int_field(j, "vocab_size", origin);
  c.context_len = int_field(j, "n_positions", origin);
  c.n_layer = int_field(j, "n_layer", origin);
  c.n_head = int_field(j, "n_head", origin);
  c.d_model = int_field(j, "n_embd", origin);
  c.qkv_bias = true;  // GPT-2's c_attn always has one
  if (j.contains("moe_experts")) {  // a mixture-of-experts model exported by Loom
    c.moe_experts = int_field(j, "moe_experts", origin);
    c.moe_top_k = int_field(j, "moe_top_k", origin);
    c.moe_every = int_field(j, "moe_every", origin);
    c.moe_capacity_factor = j.value("moe_capacity_factor", c.moe_capacity_factor);
    c.moe_aux_loss_coef = j.value("moe_aux_loss_coef", c.moe_aux_loss_coef);
    c.moe_z_loss_coef = j.value("moe_z_loss_coef", c.moe_z_loss_coef);
  }
  if (j.contains("activation_function"))
    LOOM_CHECK(j["activation_function"] == "gelu_new", origin, ": activation_function ",
               j["activation_function"].dump(), ", Loom's GPT-2 uses gelu_new");
  if (j.contains("layer_norm_epsilon"))
    LOOM_CHECK(j["layer_norm_epsilon"].is_number() && j["layer_norm_epsilon"].get<double>() == 1e-5,
               origin, ": layer_norm_epsilon ", j["layer_norm_epsilon"].dump(), ", Loom uses 1e-05");
  if (j.contains("n_inner") && !j["n_inner"].is_null())
    LOOM_CHECK(j["n_inner"] == 4 * c.d_model, origin, ": n_inner ", j["n_inner"].dump(),
               ", Loom's MLP is 4 x n_embd = ", 4 * c.d_model);
  c.validate();
  return c;
}

// The safetensors files of an HF directory, each tensor name (prefix removed) -> its file.
class HfTensors {
 public:
  explicit HfTensors(const std::string& dir) {
    const std::string index = dir + "/model.safetensors.index.json";
    if (fs::exists(index)) {
      const nlohmann::json j = read_json_file(index);
      LOOM_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), index,
                 ": no \"weight_map\" object");
      for (const auto& [name, file] : j["weight_map"].items()) {
        LOOM_CHECK(file.is_string(), index, ": weight_map[\"", name, "\"] is not a file name");
        const std::string f = file.get<std::string>();
        if (!files_.count(f)) files_[f] = std::make_unique<SafetensorsFile>(SafetensorsFile::load(dir + "/" + f));
        add(name, *files_[f], index);
      }
    } else {
      const std::string single = dir + "/model.safetensors";
      LOOM_CHECK(fs::exists(single), dir, ": neither model.safetensors nor model.safetensors.index.json");
      files_[single] = std::make_unique<SafetensorsFile>(SafetensorsFile::load(single));
      for (const auto& [name, e] : files_[single]->tensors()) add(name, *files_[single], single);
    }
  }

  // The file holding tensor `name` (without the prefix), or nullptr.
  const SafetensorsFile* find(const std::string& name) const {
    const auto it = where_.find(name);
    return it == where_.end() ? nullptr : it->second.file;
  }
  // The name the file stores it under.
  const std::string& stored_name(const std::string& name) const { return where_.at(name).stored; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, w] : where_) out.push_back(n);
    return out;
  }

 private:
  struct Where {
    const SafetensorsFile* file;
    std::string stored;
  };
  void add(const std::string& stored, const SafetensorsFile& file, const std::string& origin) {
    const std::string name = stored.starts_with(kPrefix) ? stored.substr(kPrefix.size()) : stored;
    LOOM_CHECK(where_.emplace(name, Where{&file, stored}).second, origin, ": tensor ", name,
               " stored twice (with and without the transformer. prefix)");
    LOOM_CHECK(file.tensors().count(stored), origin, ": tensor ", stored, " is not in ", file.origin());
  }
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Where> where_;
};

bool is_mask_buffer(const std::string& name) {
  return name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias");
}

void load_hf_params(const std::string& dir, const std::vector<ParamInfo>& layout, float* params) {
  const HfTensors tensors(dir);
  std::map<std::string, bool> used;
  for (const ParamInfo& p : layout) {
    const std::string name = p.name.substr(kPrefix.size());
    const SafetensorsFile* f = tensors.find(name);
    LOOM_CHECK(f != nullptr, dir, ": no tensor ", name, " (nor ", p.name, ")");
    f->copy_to(tensors.stored_name(name), "F32", p.shape, params + p.offset);
    used[name] = true;
  }
  for (const std::string& name : tensors.names()) {
    if (used.count(name) || is_mask_buffer(name)) continue;
    if (name == "lm_head.weight") {  // tied to wte: it must hold the same values
      const SafetensorsFile* f = tensors.find(name);
      const ParamInfo* wte = nullptr;
      for (const ParamInfo& p : layout) wte = p.name == "transformer.wte.weight" ? &p : wte;
      LOOM_CHECK(wte != nullptr, "no wte in the layout");
      f->check(tensors.stored_name(name), "F32", wte->shape);
      const auto bytes = f->data(tensors.stored_name(name));
      LOOM_CHECK(std::memcmp(bytes.data(), params + wte->offset, bytes.size()) == 0, dir,
                 ": lm_head.weight differs from wte.weight; Loom's GPT-2 ties them");
      continue;
    }
    // A model without q,k,v bias loads GPT-2's c_attn.bias only if it is zero.
    if (name.ends_with(".attn.c_attn.bias")) {
      const auto bytes = tensors.find(name)->data(tensors.stored_name(name));
      for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
        float v;
        std::memcpy(&v, bytes.data() + i, 4);
        LOOM_CHECK(v == 0.0f, dir, ": ", name, " is not zero, but this model has qkv_bias false");
      }
      continue;
    }
    LOOM_FAIL(dir, ": tensor ", tensors.stored_name(name), " is not part of a GPT-2 model");
  }
}

}  // namespace

bool is_hf_model_dir(const std::string& path) {
  return fs::is_directory(path) && fs::exists(path + "/config.json") &&
         !fs::exists(path + "/state.json");
}

PretrainedModel read_pretrained(const std::string& path) {
  PretrainedModel p;
  if (is_hf_model_dir(path)) {
    p.dir = path;
    p.hf = true;
    p.config = hf_config(path);
    const nlohmann::json j = read_json_file(path + "/config.json");
    p.tokenizer = j.value("loom_tokenizer", "gpt2");
    return p;
  }
  LOOM_CHECK(fs::exists(path), path, ": no such directory (expected a Hugging Face GPT-2 directory "
             "with config.json, or a Loom checkpoint)");
  p.dir = resolve_checkpoint(path);
  const CheckpointState state = read_checkpoint_state(p.dir);
  LOOM_CHECK(state.config.is_object() && state.config.contains("model"), p.dir,
             "/state.json: no model config");
  p.config = state.config["model"].get<GPTConfig>();
  p.tokenizer = state.tokenizer;
  return p;
}

void check_pretrained_shape(const PretrainedModel& pretrained, const GPTConfig& run) {
  std::string diff;
  auto field = [&](const char* name, auto theirs, auto ours) {
    if (theirs != ours)
      diff += detail::concat(diff.empty() ? "" : "; ", name, ": ", pretrained.dir, " has ", theirs,
                             ", this run ", ours);
  };
  const GPTConfig& c = pretrained.config;
  field("vocab_size", c.vocab_size, run.vocab_size);
  field("context_len", c.context_len, run.context_len);
  field("n_layer", c.n_layer, run.n_layer);
  field("n_head", c.n_head, run.n_head);
  field("d_model", c.d_model, run.d_model);
  if (!pretrained.hf) field("qkv_bias", c.qkv_bias, run.qkv_bias);
  field("moe_experts", c.moe_experts, run.moe_experts);
  if (c.is_moe() && run.is_moe()) field("moe_every", c.moe_every, run.moe_every);
  LOOM_CHECK(diff.empty(), "--init_from: the model's shape differs from this run's config: ", diff);
}

void load_pretrained_params(const PretrainedModel& pretrained, const std::vector<ParamInfo>& layout,
                            float* params) {
  if (pretrained.hf) load_hf_params(pretrained.dir, layout, params);
  else load_checkpoint_params(pretrained.dir, layout, params);
}

}  // namespace loom
