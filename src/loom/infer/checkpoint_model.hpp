#pragma once
// A trained model read back from a checkpoint, for the inference commands (generate, eval,
// export): the checkpoint's state (config, tokenizer) and its parameters, checked (sizes,
// checksums, shapes) before use.
#include <memory>
#include <string>

#include "loom/model/gpt.hpp"
#include "loom/train/checkpoint.hpp"

namespace loom::infer {

struct CheckpointModel {
  std::string dir;  // the resolved step_XXXXXX directory
  CheckpointState state;
  std::unique_ptr<GPT> model;
};

// `path`: a checkpoint directory, a `latest` file, or a Hugging Face GPT-2 directory
// (train/pretrained.hpp; its state holds only the model config and the tokenizer).
CheckpointModel load_checkpoint_model(const std::string& path);

}  // namespace loom::infer
