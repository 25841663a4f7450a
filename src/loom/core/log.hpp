#pragma once
// Logging to stderr with an optional rank prefix ("[rank 3] ..."), set once per process.
#include <string>

#include "loom/core/check.hpp"

namespace loom {

void set_log_rank(int rank);  // -1: no prefix (single process)
void log_line(const std::string& line);

template <typename... Args>
void log(const Args&... args) {
  log_line(detail::concat(args...));
}

}  // namespace loom
