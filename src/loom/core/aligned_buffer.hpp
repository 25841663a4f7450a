#pragma once
// Uninitialised, 64-byte aligned array that is allocated once and reused. Unlike std::vector it
// does not touch its pages on allocation (first-touch costs several microseconds per 4 KiB page
// in VMs), so callers decide when and by whom memory is first written.
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace loom {

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { resize(n); }
  // Discards the contents; the new elements are uninitialised.
  void resize(size_t n) {
    data_.reset();
    size_ = 0;
    if (n == 0) return;
    const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
    data_.reset(static_cast<T*>(p));
    size_ = n;
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  size_t size_ = 0;
};

}  // namespace loom
