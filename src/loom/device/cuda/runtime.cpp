#include "loom/device/cuda/runtime.hpp"

#include <mutex>

#include "loom/core/check.hpp"
#include "loom/device/device.hpp"

namespace loom::device::cuda {

namespace {
struct State {
  std::once_flag init;
  int device = 0;
  cudaStream_t stream = nullptr;
};
State& state() {
  static State s;
  return s;
}
int& chosen_device() {
  static int d = 0;
  return d;
}
}  // namespace

void set_device(int index) {
  require_cuda("cuda device " + std::to_string(index));
  LOOM_CHECK(index >= 0 && index < cuda_device_count(), "cuda device ", index, " does not exist (",
             cuda_device_count(), " GPUs)");
  // The compute stream and the pool belong to the device chosen first: switching afterwards
  // would leave them on the old one.
  LOOM_CHECK(state().stream == nullptr || state().device == index, "cuda device ", index,
             " selected after device ", state().device, " was already in use by this process");
  chosen_device() = index;
  LOOM_CUDA_CHECK(cudaSetDevice(index));
}

int current_device() { return chosen_device(); }

cudaStream_t compute_stream() {
  State& s = state();
  std::call_once(s.init, [&] {
    require_cuda("cuda");
    s.device = chosen_device();
    LOOM_CUDA_CHECK(cudaSetDevice(s.device));
    LOOM_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  });
  return s.stream;
}

void synchronize() { LOOM_CUDA_CHECK(cudaStreamSynchronize(compute_stream())); }

CachingPool& device_pool() {
  static CachingPool pool(
      RawAllocator{[](size_t bytes) {
                     compute_stream();  // the device is selected before the first allocation
                     void* p = nullptr;
                     LOOM_CUDA_CHECK(cudaMalloc(&p, bytes));
                     return p;
                   },
                   [](void* p) { cudaFree(p); }});
  return pool;
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  LOOM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, compute_stream()));
}

void copy_to_host_sync(void* dst, const void* src, size_t bytes) {
  LOOM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, compute_stream()));
  synchronize();
}

bool is_device_pointer(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

}  // namespace loom::device::cuda
