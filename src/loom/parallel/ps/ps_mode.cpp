#include "loom/parallel/ps/ps_mode.hpp"

#include "loom/core/check.hpp"

namespace loom::ps {

Mode parse_mode(const std::string& text, const std::string& flag) {
  if (text == "sync") return Mode::kSync;
  if (text == "async") return Mode::kAsync;
  if (text == "ssp") return Mode::kSsp;
  LOOM_FAIL(flag, " must be sync, async or ssp, got '", text, "'");
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kSync: return "sync";
    case Mode::kAsync: return "async";
    case Mode::kSsp: return "ssp";
  }
  return "?";
}

}  // namespace loom::ps
