#include "loom/data/token_shard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "loom/core/check.hpp"

namespace loom {
namespace {

// Closes a file descriptor on every path out of a function.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, const void* data, size_t bytes, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    LOOM_CHECK(n > 0, "token shard ", path, ": write failed: ", std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

}  // namespace

TokenShard::TokenShard(const std::string& path, int vocab_size) : path_(path) {
  LOOM_CHECK(vocab_size > 0 && vocab_size <= 65536, "token shard ", path, ": vocab_size ",
             vocab_size, " does not fit uint16 ids (expected 1..65536)");
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  LOOM_CHECK(f.fd >= 0, "token shard ", path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  LOOM_CHECK(::fstat(f.fd, &st) == 0, "token shard ", path, ": cannot stat: ", std::strerror(errno));
  LOOM_CHECK(S_ISREG(st.st_mode), "token shard ", path, ": not a regular file");
  const size_t file_bytes = static_cast<size_t>(st.st_size);
  LOOM_CHECK(file_bytes >= kShardHeaderBytes, "token shard ", path, ": truncated header (",
             file_bytes, " bytes, expected at least ", kShardHeaderBytes, ")");

  void* map = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, f.fd, 0);
  LOOM_CHECK(map != MAP_FAILED, "token shard ", path, ": mmap failed: ", std::strerror(errno));
  map_ = map;
  map_bytes_ = file_bytes;
  try {
    int32_t header[3];
    std::memcpy(header, map_, sizeof(header));
    LOOM_CHECK(header[0] == kShardMagic, "token shard ", path, ": bad magic ", header[0],
               " (expected ", kShardMagic, ", llm.c format)");
    LOOM_CHECK(header[1] == kShardVersion, "token shard ", path, ": unsupported version ",
               header[1], " (expected ", kShardVersion, ": uint16 token ids)");
    LOOM_CHECK(header[2] >= 0, "token shard ", path, ": negative token count ", header[2]);
    const size_t count = static_cast<size_t>(header[2]);
    const size_t expected = kShardHeaderBytes + count * sizeof(uint16_t);
    LOOM_CHECK(file_bytes == expected, "token shard ", path, ": header says ", count,
               " tokens (", expected, " bytes) but the file has ", file_bytes, " bytes",
               file_bytes < expected ? " (truncated body)" : " (trailing bytes)");
    tokens_ = reinterpret_cast<const uint16_t*>(static_cast<const char*>(map_) + kShardHeaderBytes);
    num_tokens_ = count;
    // Sequential scan once: makes corrupt data fail here, not in the middle of training.
    ::madvise(map_, map_bytes_, MADV_SEQUENTIAL);
    uint16_t max_id = 0;
    for (size_t i = 0; i < count; ++i) max_id = tokens_[i] > max_id ? tokens_[i] : max_id;
    if (count > 0 && max_id >= vocab_size) {
      size_t at = 0;
      while (tokens_[at] < vocab_size) ++at;
      LOOM_FAIL("token shard ", path, ": token id ", tokens_[at], " at position ", at,
                " is >= vocab size ", vocab_size);
    }
    ::madvise(map_, map_bytes_, MADV_RANDOM);
  } catch (...) {
    unmap();
    throw;
  }
}

TokenShard::~TokenShard() { unmap(); }

TokenShard::TokenShard(TokenShard&& other) noexcept { *this = std::move(other); }

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    num_tokens_ = std::exchange(other.num_tokens_, 0);
  }
  return *this;
}

void TokenShard::unmap() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
  tokens_ = nullptr;
  num_tokens_ = 0;
}

void write_shard(const std::string& path, std::span<const uint16_t> tokens) {
  LOOM_CHECK(tokens.size() <= 0x7fffffffu, "token shard ", path, ": ", tokens.size(),
             " tokens do not fit the int32 count of the llm.c header");
  int32_t header[kShardHeaderInts] = {};
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = static_cast<int32_t>(tokens.size());
  const std::string tmp = path + ".tmp";
  {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    LOOM_CHECK(f.fd >= 0, "token shard ", tmp, ": cannot create: ", std::strerror(errno));
    try {
      write_all(f.fd, header, sizeof(header), tmp);
      write_all(f.fd, tokens.data(), tokens.size_bytes(), tmp);
      LOOM_CHECK(::fsync(f.fd) == 0, "token shard ", tmp, ": fsync failed: ", std::strerror(errno));
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    LOOM_FAIL("token shard ", path, ": cannot rename from ", tmp, ": ", std::strerror(err));
  }
}

}  // namespace loom
