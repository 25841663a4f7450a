#pragma once
// Activation recomputation (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
// Transformer Models"): trade backward compute for activation memory.
#include <string>

namespace loom {

enum class Recompute {
  kNone,       // keep every block's activations from forward to backward
  kSelective,  // drop the (B, H, T, T) attention probabilities; recompute them from q,k,v
  kFull,       // keep only each block's input; recompute the block's forward in backward
};

// "none", "selective" or "full"; anything else is an error naming `flag` and the valid values.
Recompute parse_recompute(const std::string& text, const std::string& flag = "--recompute");
const char* recompute_name(Recompute r);

}  // namespace loom
