#include "loom/model/recompute.hpp"

#include "loom/core/check.hpp"

namespace loom {

Recompute parse_recompute(const std::string& text, const std::string& flag) {
  if (text == "none") return Recompute::kNone;
  if (text == "selective") return Recompute::kSelective;
  if (text == "full") return Recompute::kFull;
  LOOM_FAIL(flag, " must be none, selective or full, got '", text, "'");
}

const char* recompute_name(Recompute r) {
  switch (r) {
    case Recompute::kSelective: return "selective";
    case Recompute::kFull: return "full";
    default: return "none";
  }
}

}  // namespace loom
