#include "loom/data/data_tokenizer.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "loom/core/check.hpp"
#include "loom/core/json_input.hpp"

namespace loom {

std::string data_tokenizer(const std::string& data_dir) {
  const std::string path = data_dir + "/meta.json";
  if (!std::filesystem::exists(path)) return "gpt2";
  const auto j = read_json_file(path);
  LOOM_CHECK(j.is_object(), path, ": not a JSON object");
  if (!j.contains("tokenizer")) return "gpt2";
  LOOM_CHECK(j["tokenizer"].is_string(), path, ": \"tokenizer\" must be a string");
  return j["tokenizer"].get<std::string>();
}

void check_same_tokenizer(const std::string& model_tokenizer, const std::string& model,
                          const std::string& data_dir) {
  const std::string data = data_tokenizer(data_dir);
  LOOM_CHECK(model_tokenizer.empty() || model_tokenizer == data, model, " was trained with the ",
             model_tokenizer, " tokenizer, but ", data_dir, " holds ", data,
             " token ids (meta.json); tokenize the data with --tokenizer ", model_tokenizer);
}

}  // namespace loom
