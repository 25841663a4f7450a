#include "loom/kernels/cpu/bf16_operands.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "loom/core/aligned_buffer.hpp"
#include "loom/core/check.hpp"

namespace loom::kernels {

namespace {

struct WeightCopy {
  int rows = 0, cols = 0, ld = 0;
  uint64_t generation = 0;
  AlignedBuffer<bf16> data;
};

std::atomic<uint64_t> g_generation{1};
std::mutex g_mutex;
std::unordered_map<const float*, WeightCopy> g_weights;

}  // namespace

const bf16* scratch_bf16(int slot, const float* src, int rows, int cols, int ld) {
  LOOM_CHECK(slot == 0 || slot == 1, "bf16 scratch slot must be 0 or 1, got ", slot);
  thread_local AlignedBuffer<bf16> buffers[2];
  AlignedBuffer<bf16>& buf = buffers[slot];
  const size_t n = static_cast<size_t>(rows) * cols;
  if (buf.size() < n) buf.resize(n);
  convert_to_bf16(buf.data(), src, rows, cols, ld);
  return buf.data();
}

const bf16* cached_bf16(const float* src, int rows, int cols, int ld) {
  const uint64_t generation = g_generation.load();
  std::lock_guard<std::mutex> lock(g_mutex);
  WeightCopy& w = g_weights[src];
  if (w.generation == generation && w.rows == rows && w.cols == cols && w.ld == ld) {
    return w.data.data();
  }
  const size_t n = static_cast<size_t>(rows) * cols;
  if (w.data.size() < n) w.data.resize(n);
  convert_to_bf16(w.data.data(), src, rows, cols, ld);
  w.rows = rows, w.cols = cols, w.ld = ld, w.generation = generation;
  return w.data.data();
}

void new_weight_generation() { g_generation.fetch_add(1); }

}  // namespace loom::kernels
