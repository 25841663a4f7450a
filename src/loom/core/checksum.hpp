#pragma once
// FNV-1a, 64-bit: a small, dependency-free checksum for checkpoint files. It detects corruption
// and truncation (not tampering: it is not a cryptographic hash).
#include <cstddef>
#include <cstdint>
#include <string>

namespace loom {

class Fnv1a64 {
 public:
  void update(const void* data, size_t n);
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

uint64_t fnv1a64(const void* data, size_t n);

// 16 lowercase hex digits.
std::string hex64(uint64_t x);

}  // namespace loom
