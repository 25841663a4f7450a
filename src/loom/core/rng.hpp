#pragma once
// Deterministic random numbers: xoshiro256** seeded through splitmix64. The whole state is four
// 64-bit words, so it can be saved in a checkpoint and restored exactly.
#include <array>
#include <cstdint>

namespace loom {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next_u64();
  // Uniform in [0, 1) with 24 random bits (exact in float).
  float uniform();
  // Standard normal (Box-Muller; no cached second value, so the state alone defines the stream).
  double normal();
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n);

  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_;
};

}  // namespace loom
