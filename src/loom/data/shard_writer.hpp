#pragma once
// Writes a token stream as numbered llm.c shards: <dir>/<prefix>_000000.bin, _000001, ... each
// holding at most `shard_tokens` tokens (the last one the rest).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace loom {

class ShardSequenceWriter {
 public:
  ShardSequenceWriter(std::string dir, std::string prefix, size_t shard_tokens, int vocab_size);
  void append(std::span<const int32_t> ids);
  // Writes what is buffered (if anything) and returns the paths of all shards written.
  std::vector<std::string> finish();
  uint64_t tokens() const { return total_; }

 private:
  void flush();
  std::string dir_, prefix_;
  size_t shard_tokens_;
  int vocab_size_;
  std::vector<uint16_t> buffer_;
  std::vector<std::string> paths_;
  uint64_t total_ = 0;
};

}  // namespace loom
