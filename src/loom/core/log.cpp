#include "loom/core/log.hpp"

#include <cstdio>

namespace loom {

static int g_log_rank = -1;

void set_log_rank(int rank) { g_log_rank = rank; }

void log_line(const std::string& line) {
  // One fputs per line so lines from concurrent ranks do not interleave mid-line.
  std::string out = g_log_rank >= 0 ? "[rank " + std::to_string(g_log_rank) + "] " + line : line;
  out += '\n';
  std::fputs(out.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace loom
