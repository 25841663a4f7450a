#pragma once
// JSON read from outside the program (config files, checkpoint state.json, data meta.json,
// safetensors headers): parsed with a bounded nesting depth, every failure a loom::Error that
// names the origin and, where known, the field being read.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace loom {

// Deepest nesting of arrays/objects accepted. Loom's own files nest at most 4 levels
// (state.json: files.<name>.bytes); a depth bound keeps a hostile file from exhausting the stack.
inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; `origin` (a path, or "path: header") starts every error message.
nlohmann::json parse_json(std::string_view text, const std::string& origin);

// Reads and parses the file at `path`.
nlohmann::json read_json_file(const std::string& path);

}  // namespace loom
