#pragma once
// Helpers shared by the libFuzzer targets: a per-process scratch file for readers that take a
// path, and the rule every target follows: a loom::Error is the expected answer to bad input;
// anything else (another exception, a crash, a sanitizer report) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "loom/core/check.hpp"

namespace loom::fuzz {

// A directory of this process's own under the temp dir (fuzz jobs run several processes).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const auto d = std::filesystem::temp_directory_path() / ("loom-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

// Writes `data` to scratch_dir()/name and returns the path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                static_cast<std::streamsize>(size));
  return path;
}

// Runs `parse`; a loom::Error is an accepted rejection.
template <typename F>
void expect_ok_or_loom_error(const F& parse) {
  try {
    parse();
  } catch (const loom::Error&) {
  }
}

}  // namespace loom::fuzz
