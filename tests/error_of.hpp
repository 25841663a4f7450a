#pragma once
// The message of the loom::Error that f throws, or "" when it throws none.
#include <functional>
#include <string>

#include "loom/core/check.hpp"

namespace loom::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace loom::test
