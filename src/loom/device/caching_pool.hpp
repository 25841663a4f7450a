#pragma once
// A caching allocator over a raw allocator (cudaMalloc on a GPU): freed blocks go to a free list
// of their size class and are handed out again, so a training step that repeats the previous
// step's allocations calls the raw allocator only during the first step. The host-side logic is
// device-independent (the tests drive it with malloc).
//
// Blocks are reused in release order on a single stream: a block released while kernels that
// read it are still queued on the compute stream is safe to reuse by later kernels on that same
// stream (stream order), not by another stream without an event.
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace loom::device {

struct RawAllocator {
  std::function<void*(size_t)> alloc;  // throws on failure
  std::function<void(void*)> free;
};

// Bytes actually reserved for a request: a multiple of 512 below 1 MiB, of 2 MiB above, so
// tensors of slightly different sizes share a class and fragmentation stays bounded.
size_t pool_size_class(size_t bytes);

class CachingPool {
 public:
  struct Stats {
    size_t raw_allocs = 0;    // calls to the raw allocator so far
    size_t bytes_in_use = 0;  // handed out and not released
    size_t bytes_cached = 0;  // released, kept for reuse
    size_t peak_in_use = 0;
  };

  explicit CachingPool(RawAllocator raw);
  ~CachingPool();  // returns every cached block to the raw allocator
  CachingPool(const CachingPool&) = delete;
  CachingPool& operator=(const CachingPool&) = delete;

  void* allocate(size_t bytes);  // nullptr for 0 bytes
  void release(void* p);         // p from allocate(); nullptr is ignored
  void empty_cache();            // frees the cached (released) blocks
  Stats stats() const;
  void reset_peak();  // peak_in_use = bytes_in_use (to measure one region)

 private:
  RawAllocator raw_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> released blocks
  std::unordered_map<void*, size_t> live_;     // handed out -> size class
  Stats stats_;
};

}  // namespace loom::device
