// The tiktoken vocabulary (r50k_base.tiktoken: '<base64 bytes> <rank>' per line), then a short
// encode/decode with whatever vocabulary was accepted.
#include <cstdint>
#include <vector>

#include "fuzz_input.hpp"
#include "loom/data/bpe_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loom::fuzz::write_scratch("vocab.tiktoken", data, size);
  loom::fuzz::expect_ok_or_loom_error([&] {
    const loom::BpeTokenizer tok(path);
    const std::vector<int32_t> ids = tok.encode("Hello world, it's 2026!\n");
    tok.decode(ids);
  });
  return 0;
}
