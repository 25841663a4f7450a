#include "loom/data/shard_writer.hpp"

#include <cstdio>

#include "loom/core/check.hpp"
#include "loom/data/token_shard.hpp"

namespace loom {

ShardSequenceWriter::ShardSequenceWriter(std::string dir, std::string prefix, size_t shard_tokens,
                                         int vocab_size)
    : dir_(std::move(dir)),
      prefix_(std::move(prefix)),
      shard_tokens_(shard_tokens),
      vocab_size_(vocab_size) {
  LOOM_CHECK(shard_tokens > 0 && shard_tokens <= 0x7fffffffu,
             "--shard_tokens must be in 1..2147483647, got ", shard_tokens);
  LOOM_CHECK(vocab_size > 0 && vocab_size <= 65536, "shards store uint16 ids: vocab size ",
             vocab_size, " is too large");
}

void ShardSequenceWriter::append(std::span<const int32_t> ids) {
  for (const int32_t id : ids) {
    LOOM_CHECK(id >= 0 && id < vocab_size_, "token id ", id, " outside the vocabulary");
    buffer_.push_back(static_cast<uint16_t>(id));
    if (buffer_.size() == shard_tokens_) flush();
  }
  total_ += ids.size();
}

void ShardSequenceWriter::flush() {
  char name[32];
  std::snprintf(name, sizeof(name), "_%06zu.bin", paths_.size());
  paths_.push_back(dir_ + "/" + prefix_ + name);
  write_shard(paths_.back(), buffer_);
  buffer_.clear();
}

std::vector<std::string> ShardSequenceWriter::finish() {
  if (!buffer_.empty()) flush();
  return paths_;
}

}  // namespace loom
