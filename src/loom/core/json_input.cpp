#include "loom/core/json_input.hpp"

#include <fstream>
#include <sstream>
#include <vector>

#include "loom/core/check.hpp"

namespace loom {
namespace {

// Rejects nesting deeper than kMaxJsonDepth before nlohmann's parser sees the text: brackets
// inside strings do not count. The scan is linear and uses no recursion.
void check_depth(std::string_view text, const std::string& origin) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      LOOM_CHECK(++depth <= kMaxJsonDepth, origin, ": JSON nested deeper than ", kMaxJsonDepth,
                 " levels at byte ", i, " (arrays/objects inside each other); not a valid input");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

// Where a parse stopped: the keys open at that point ("train.lr"), from nlohmann's parse
// callback, and whether the innermost key's value was complete ("after" it) or not ("in" it).
class FieldPath {
 public:
  // Called for every parse event; `depth` is the nesting depth nlohmann reports for it.
  bool on_event(int depth, nlohmann::json::parse_event_t event, const nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    const auto d = static_cast<size_t>(depth);
    if (event == E::key) {  // a key of the object at depth - 1
      keys_.resize(d);
      keys_.back() = parsed.get<std::string>();
      value_done_ = false;
    } else if (event == E::value && d == keys_.size()) {
      value_done_ = true;
    } else if ((event == E::object_end || event == E::array_end) && keys_.size() >= d) {
      keys_.resize(d);
      value_done_ = true;
    }
    return true;
  }
  // " (in field \"train.lr\")", or "" at the top level.
  std::string describe() const {
    if (keys_.empty()) return "";
    std::string path;
    for (const auto& k : keys_) path += (path.empty() ? "" : ".") + k;
    return std::string(value_done_ ? " (after field \"" : " (in field \"") + path + "\")";
  }

 private:
  std::vector<std::string> keys_;
  bool value_done_ = false;
};

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string plain_message(const nlohmann::json::exception& e) {
  const std::string m = e.what();
  const size_t close = m.find("] ");
  return m.rfind("[json.exception.", 0) == 0 && close != std::string::npos ? m.substr(close + 2) : m;
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& origin) {
  check_depth(text, origin);
  FieldPath path;
  try {
    return nlohmann::json::parse(
        text.begin(), text.end(),
        [&path](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          return path.on_event(depth, event, parsed);
        });
  } catch (const nlohmann::json::exception& e) {
    LOOM_FAIL(origin, ": not valid JSON", path.describe(), ": ", plain_message(e));
  }
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in, path, ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  LOOM_CHECK(!in.bad(), path, ": read error");
  return parse_json(text.str(), path);
}

}  // namespace loom
