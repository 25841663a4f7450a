#pragma once
// CLI11 option names for a snake_case flag and its dashed alias: "max_new_tokens" ->
// "--max_new_tokens,--max-new-tokens" (every flag is accepted with dashes or underscores).
#include <algorithm>
#include <string>

namespace loom::cli {

inline std::string flag_names(std::string name) {
  std::string out = "--" + name;
  if (name.find('_') == std::string::npos) return out;
  std::replace(name.begin(), name.end(), '_', '-');
  return out + ",--" + name;
}

}  // namespace loom::cli
