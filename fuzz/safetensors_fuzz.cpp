// safetensors files (checkpoints, loom export): header length, JSON header, tensor extents.
#include <cstdint>
#include <vector>

#include "fuzz_input.hpp"
#include "loom/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  loom::fuzz::expect_ok_or_loom_error([&] {
    const loom::SafetensorsFile f(std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
    size_t total = 0;
    for (const auto& [name, entry] : f.tensors()) {
      const auto bytes = f.data(name);
      for (const uint8_t b : bytes) total += b;  // every byte a tensor claims must be readable
    }
    (void)total;
  });
  return 0;
}
