#include "loom/infer/checkpoint_model.hpp"

#include "loom/core/check.hpp"

namespace loom::infer {

CheckpointModel load_checkpoint_model(const std::string& path) {
  CheckpointModel c;
  c.dir = resolve_checkpoint(path);
  c.state = read_checkpoint_state(c.dir);
  LOOM_CHECK(c.state.config.is_object() && c.state.config.contains("model"), c.dir,
             "/state.json: no model config");
  c.model = std::make_unique<GPT>(c.state.config["model"].get<GPTConfig>());
  load_checkpoint_params(c.dir, c.model->layout(), c.model->params());
  return c;
}

}  // namespace loom::infer
