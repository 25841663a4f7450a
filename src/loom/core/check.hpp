#pragma once
// Errors: every failure a user can cause (bad flag, bad file, dead rank) is a loom::Error whose
// message names the thing at fault and what was expected. The CLI prints it and exits non-zero.
#include <sstream>
#include <stdexcept>
#include <string>

namespace loom {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace loom

// LOOM_CHECK(cond, parts...): throws loom::Error with the parts streamed together.
#define LOOM_CHECK(cond, ...)                                        \
  do {                                                               \
    if (!(cond)) throw ::loom::Error(::loom::detail::concat(__VA_ARGS__)); \
  } while (0)

#define LOOM_FAIL(...) throw ::loom::Error(::loom::detail::concat(__VA_ARGS__))
