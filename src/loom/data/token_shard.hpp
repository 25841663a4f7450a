#pragma once
// Token shards in llm.c's format: a header of 256 int32 (magic 20240520, version 1, token count,
// the rest zero), then `count` uint16 token ids. Shards written by llm.c / nanoGPT-style scripts
// load unchanged, and shards written here load there.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace loom {

inline constexpr int32_t kShardMagic = 20240520;
inline constexpr int32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderInts = 256;
inline constexpr size_t kShardHeaderBytes = kShardHeaderInts * sizeof(int32_t);

// A read-only, memory-mapped shard. Opening validates the header (magic, version, token count
// against the file size) and every id (< vocab_size); errors are loom::Error naming the file.
class TokenShard {
 public:
  TokenShard(const std::string& path, int vocab_size);
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const std::string& path() const { return path_; }
  std::span<const uint16_t> tokens() const { return {tokens_, num_tokens_}; }
  size_t size() const { return num_tokens_; }

 private:
  void unmap();
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint16_t* tokens_ = nullptr;
  size_t num_tokens_ = 0;
};

// Writes a shard atomically: to "<path>.tmp", fsync, then rename over `path`.
void write_shard(const std::string& path, std::span<const uint16_t> tokens);

}  // namespace loom
