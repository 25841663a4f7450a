#include "loom/kernels/cpu/bf16_operands.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "loom/core/aligned_buffer.hpp"
#include "loom/core/check.hpp"

namespace loom::kernels {

namespace {

// One cached copy per (matrix, shape, row stride): a buffer sized once and never resized, so a
// copy handed out stays where it is while other shapes of the same matrix come and go.
struct WeightKey {
  const float* src;
  int rows, cols, ld;
  bool operator==(const WeightKey&) const = default;
};

struct WeightKeyHash {
  size_t operator()(const WeightKey& k) const {
    size_t h = std::hash<const float*>()(k.src);
    for (int v : {k.rows, k.cols, k.ld}) h = h * 1000003 ^ std::hash<int>()(v);
    return h;
  }
};

struct WeightCopy {
  uint64_t generation = 0;
  AlignedBuffer<bf16> data;
};

std::atomic<uint64_t> g_generation{1};
std::atomic<int64_t> g_weights_ns{0}, g_others_ns{0};

// Converts and adds the time taken to `total`.
void timed_convert(std::atomic<int64_t>& total, bf16* dst, const float* src, int rows, int cols,
                   int ld, int dst_ld = 0) {
  const auto t0 = std::chrono::steady_clock::now();
  convert_to_bf16(dst, src, rows, cols, ld, dst_ld);
  total += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                t0)
               .count();
}
std::mutex g_mutex;
// Nodes of an unordered_map keep their address when it rehashes.
std::unordered_map<WeightKey, WeightCopy, WeightKeyHash> g_weights;

// This thread's RoundedOnce buffers, a stack: [0, t_rounded_once_live) are in use.
constexpr int kMaxRoundedOnce = RoundedOnce<float>::kMaxRoundedOnce;
thread_local AlignedBuffer<bf16> t_rounded_once[kMaxRoundedOnce];
thread_local int t_rounded_once_live = 0;

}  // namespace

const bf16* scratch_bf16(int slot, const float* src, int rows, int cols, int ld, bool weight) {
  LOOM_CHECK(slot == 0 || slot == 1, "bf16 scratch slot must be 0 or 1, got ", slot);
  thread_local AlignedBuffer<bf16> buffers[2];
  AlignedBuffer<bf16>& buf = buffers[slot];
  const size_t n = static_cast<size_t>(rows) * cols;
  if (buf.size() < n) buf.resize(n);
  timed_convert(weight ? g_weights_ns : g_others_ns, buf.data(), src, rows, cols, ld);
  return buf.data();
}

const bf16* rounded_once_bf16(const float* src, int rows, int cols, int ld, int* ld16) {
  LOOM_CHECK(t_rounded_once_live < kMaxRoundedOnce, "at most ", kMaxRoundedOnce,
             " RoundedOnce per thread at a time");
  AlignedBuffer<bf16>& buf = t_rounded_once[t_rounded_once_live];
  *ld16 = (cols + 63) / 64 * 64;
  const size_t n = static_cast<size_t>(rows) * *ld16;
  if (buf.size() < n) buf.resize(n);
  timed_convert(g_others_ns, buf.data(), src, rows, cols, ld, *ld16);
  ++t_rounded_once_live;
  return buf.data();
}

// RoundedOnce objects are scoped and neither copied nor moved, so the last one made is the one
// released.
void release_rounded_once() { --t_rounded_once_live; }

const bf16* cached_bf16(const float* src, int rows, int cols, int ld) {
  const uint64_t generation = g_generation.load();
  std::lock_guard<std::mutex> lock(g_mutex);
  WeightCopy& w = g_weights[{src, rows, cols, ld}];
  if (w.generation == generation) return w.data.data();
  if (w.data.size() == 0) w.data.resize(static_cast<size_t>(rows) * cols);
  timed_convert(g_weights_ns, w.data.data(), src, rows, cols, ld);
  w.generation = generation;
  return w.data.data();
}

void new_weight_generation() { g_generation.fetch_add(1); }

Bf16ConversionTime bf16_conversion_time() {
  return {static_cast<double>(g_weights_ns.load()) * 1e-9,
          static_cast<double>(g_others_ns.load()) * 1e-9};
}

}  // namespace loom::kernels
