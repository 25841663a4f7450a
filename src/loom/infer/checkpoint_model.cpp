#include "loom/infer/checkpoint_model.hpp"

#include <nlohmann/json.hpp>

#include "loom/core/check.hpp"
#include "loom/train/pretrained.hpp"

namespace loom::infer {

CheckpointModel load_checkpoint_model(const std::string& path) {
  CheckpointModel c;
  if (is_hf_model_dir(path)) {
    const PretrainedModel hf = read_pretrained(path);
    c.dir = hf.dir;
    c.state.tokenizer = hf.tokenizer;
    c.state.config = {{"model", hf.config}};
    c.model = std::make_unique<GPT>(hf.config);
    load_pretrained_params(hf, c.model->layout(), c.model->params());
    return c;
  }
  c.dir = resolve_checkpoint(path);
  c.state = read_checkpoint_state(c.dir);
  LOOM_CHECK(c.state.config.is_object() && c.state.config.contains("model"), c.dir,
             "/state.json: no model config");
  c.model = std::make_unique<GPT>(c.state.config["model"].get<GPTConfig>());
  load_checkpoint_params(c.dir, c.model->layout(), c.model->params());
  return c;
}

}  // namespace loom::infer
