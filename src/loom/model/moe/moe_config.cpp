#include "loom/model/moe/moe_config.hpp"

#include <cmath>

namespace loom::moe {

int64_t MoeConfig::capacity(int64_t tokens, bool dropless) const {
  if (dropless || capacity_factor == 0.0f) return tokens * top_k;
  return static_cast<int64_t>(std::ceil(static_cast<double>(capacity_factor) * tokens * top_k / experts));
}

}  // namespace loom::moe
