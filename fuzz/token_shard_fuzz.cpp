// Token shards (llm.c format: 256 int32 header, uint16 tokens), read through mmap.
#include <cstdint>

#include "fuzz_input.hpp"
#include "loom/data/token_shard.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loom::fuzz::write_scratch("shard.bin", data, size);
  loom::fuzz::expect_ok_or_loom_error([&] {
    const loom::TokenShard shard(path, 50257);
    uint64_t sum = 0;
    for (const uint16_t t : shard.tokens()) sum += t;  // every token it claims must be mapped
    (void)sum;
  });
  return 0;
}
