#pragma once
// Sliding windows over the concatenated tokens of one or more shards (llm.c format, see
// token_shard.hpp). Window i covers tokens [i*stride, i*stride + context_len]: inputs are the first
// context_len of them, targets the last context_len (next-token). Windows cross shard boundaries.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loom {

class WindowDataset {
 public:
  // Shards are memory-mapped and validated (ids < vocab_size); errors name the file.
  WindowDataset(const std::vector<std::string>& shard_paths, int context_len, int stride,
                int vocab_size);
  ~WindowDataset();
  size_t size() const;        // number of windows
  size_t num_tokens() const;  // tokens over all shards
  // inputs, targets: context_len int32 each.
  void get(size_t index, int32_t* inputs, int32_t* targets) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Shards of a directory written by `loom tokenize` (or llm.c): files "*train*.bin" or "*val*.bin"
// (split = "train" | "val"), sorted by name. Error if there are none.
std::vector<std::string> find_shards(const std::string& dir, const std::string& split);

}  // namespace loom
