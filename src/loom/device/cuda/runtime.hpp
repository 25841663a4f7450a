#pragma once
// The device runtime every CUDA kernel and the NCCL backend share: one compute stream per
// process (all kernels and cuBLASLt calls run on it, in program order), a caching pool for
// device memory (no cudaMalloc inside a training step once the first step has run), and RAII
// device arrays on that pool.
#include <cuda_runtime.h>

#include <cstddef>

#include "loom/device/caching_pool.hpp"
#include "loom/device/cuda/cuda_check.hpp"

namespace loom::device::cuda {

// Selects the process's GPU (default 0; a rank picks its local rank) before first use (a later
// change of device is refused: the stream and pool stay on the first). Throws
// "no GPU" (see device.hpp) when there is none.
void set_device(int index);
int current_device();

// The stream every kernel is launched on. Created on first use, on the current device.
cudaStream_t compute_stream();
void synchronize();  // waits for the compute stream; turns an asynchronous kernel error into an
                     // Error

CachingPool& device_pool();

// count elements of T on the device, from device_pool(); uninitialised.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t count)
      : data_(static_cast<T*>(device_pool().allocate(count * sizeof(T)))), count_(count) {}
  ~DeviceArray() { device_pool().release(data_); }
  DeviceArray(DeviceArray&& o) noexcept : data_(o.data_), count_(o.count_) {
    o.data_ = nullptr;
    o.count_ = 0;
  }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(count_, o.count_);
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return count_; }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

// Host <-> device copies on the compute stream; the _sync forms wait for completion.
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host_sync(void* dst, const void* src, size_t bytes);

// True for memory the GPU can address directly (cudaMalloc'd or managed).
bool is_device_pointer(const void* p);

}  // namespace loom::device::cuda
