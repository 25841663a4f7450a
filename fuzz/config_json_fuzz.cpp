// `loom train --config`: the JSON text and its conversion to a RunConfig.
#include <cstdint>
#include <string_view>

#include "fuzz_input.hpp"
#include "loom/core/json_input.hpp"
#include "loom/config/train_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  loom::fuzz::expect_ok_or_loom_error([&] {
    const auto j = loom::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
    loom::parse_run_config(j, "fuzz.json");
  });
  return 0;
}
