// A checkpoint's state.json (loom train --resume).
#include <cstdint>

#include "fuzz_input.hpp"
#include "loom/train/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  loom::fuzz::write_scratch("state.json", data, size);
  loom::fuzz::expect_ok_or_loom_error([&] { loom::read_checkpoint_state(loom::fuzz::scratch_dir()); });
  return 0;
}
