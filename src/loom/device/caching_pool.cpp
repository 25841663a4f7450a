#include "loom/device/caching_pool.hpp"

#include <algorithm>

#include "loom/core/check.hpp"

namespace loom::device {

size_t pool_size_class(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
  const size_t unit = bytes < kSmallLimit ? kSmall : kLarge;
  return (bytes + unit - 1) / unit * unit;
}

CachingPool::CachingPool(RawAllocator raw) : raw_(std::move(raw)) {
  LOOM_CHECK(raw_.alloc && raw_.free, "CachingPool needs an allocate and a free function");
}

CachingPool::~CachingPool() { empty_cache(); }

void* CachingPool::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t cls = pool_size_class(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_.find(cls);
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    stats_.bytes_cached -= cls;
  } else {
    p = raw_.alloc(cls);
    ++stats_.raw_allocs;
  }
  live_[p] = cls;
  stats_.bytes_in_use += cls;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.bytes_in_use);
  return p;
}

void CachingPool::release(void* p) {
  if (p == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  LOOM_CHECK(it != live_.end(), "CachingPool::release: pointer was not allocated by this pool");
  const size_t cls = it->second;
  live_.erase(it);
  free_[cls].push_back(p);
  stats_.bytes_in_use -= cls;
  stats_.bytes_cached += cls;
}

void CachingPool::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [cls, blocks] : free_)
    for (void* p : blocks) raw_.free(p);
  free_.clear();
  stats_.bytes_cached = 0;
}

CachingPool::Stats CachingPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingPool::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_in_use = stats_.bytes_in_use;
}

}  // namespace loom::device
