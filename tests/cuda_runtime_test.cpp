// The device runtime's host-side logic, which runs on every machine: the caching pool (driven by
// a host allocator here), CUDA error -> loom::Error, the device flag's parsing, and the "no GPU"
// error. The GPU half (the pool on cudaMalloc, in a repeated step) is skipped without a GPU.
#include <cstdlib>
#include <set>

#include "cuda_test_util.hpp"
#include "error_of.hpp"
#include "loom/device/caching_pool.hpp"
#ifdef LOOM_WITH_CUDA
#include "loom/device/cuda/cuda_check.hpp"
#include "loom/kernels/cuda/gelu.hpp"
#endif

namespace loom::device {
namespace {

struct CountingMalloc {
  int allocs = 0, frees = 0;
  RawAllocator raw() {
    return {[this](size_t bytes) {
              ++allocs;
              return std::malloc(bytes);
            },
            [this](void* p) {
              ++frees;
              std::free(p);
            }};
  }
};

TEST(CachingPool, SizeClasses) {
  EXPECT_EQ(pool_size_class(1), 512u);
  EXPECT_EQ(pool_size_class(512), 512u);
  EXPECT_EQ(pool_size_class(513), 1024u);
  EXPECT_EQ(pool_size_class((1u << 20) - 1), 1u << 20);
  EXPECT_EQ(pool_size_class((1u << 20) + 1), 2u << 20);
  EXPECT_EQ(pool_size_class((5u << 20) + 7), 6u << 20);
}

TEST(CachingPool, RepeatedStepAllocatesOnlyOnce) {
  CountingMalloc m;
  {
    CachingPool pool(m.raw());
    const size_t sizes[] = {1000, 4096, 3 << 20, 1000, 77};
    for (int step = 0; step < 5; ++step) {
      std::vector<void*> live;
      for (size_t s : sizes) live.push_back(pool.allocate(s));
      EXPECT_EQ(std::set<void*>(live.begin(), live.end()).size(), live.size());  // distinct
      for (void* p : live) pool.release(p);
    }
    EXPECT_EQ(m.allocs, 5);  // the first step's blocks, reused by the four later steps
    EXPECT_EQ(pool.stats().raw_allocs, 5u);
    EXPECT_EQ(pool.stats().bytes_in_use, 0u);
    EXPECT_EQ(pool.stats().bytes_cached, 2 * 1024u + 4096u + (4u << 20) + 512u);
    EXPECT_EQ(pool.stats().peak_in_use, pool.stats().bytes_cached);
  }
  EXPECT_EQ(m.frees, 5);  // the destructor returns the cache
}

TEST(CachingPool, ReleaseOfForeignPointerAndEmptyCache) {
  CountingMalloc m;
  CachingPool pool(m.raw());
  int x = 0;
  EXPECT_NE(test::error_of([&] { pool.release(&x); }).find("not allocated by this pool"),
            std::string::npos);
  EXPECT_EQ(pool.allocate(0), nullptr);
  void* p = pool.allocate(100);
  pool.release(p);
  pool.empty_cache();
  EXPECT_EQ(m.frees, 1);
  EXPECT_EQ(pool.stats().bytes_cached, 0u);
  void* q = pool.allocate(100);  // a fresh block after the cache was emptied
  EXPECT_EQ(m.allocs, 2);
  pool.release(q);
}

TEST(Device, ParsesTheDeviceFlag) {
  EXPECT_EQ(parse_device("cpu", "--device"), Device::kCpu);
  EXPECT_EQ(parse_device("cuda", "--device"), Device::kCuda);
  EXPECT_NE(test::error_of([] {
              parse_device("tpu", "--device");
            }).find("--device: unknown device 'tpu' (expected cpu or cuda)"),
            std::string::npos);
}

TEST(Device, RequireCudaSaysNoGpuExactlyWhenThereIsNone) {
  const std::string err = test::error_of([] { require_cuda("--device cuda"); });
  if (cuda_device_count() == 0) {
    EXPECT_NE(err.find("--device cuda: no GPU: "), std::string::npos) << err;
    EXPECT_FALSE(cuda_unavailable_reason().empty());
    EXPECT_NE(describe_cuda().find("no"), std::string::npos) << describe_cuda();
  } else {
    EXPECT_EQ(err, "");
    EXPECT_NE(describe_cuda().find("gpu 0: "), std::string::npos) << describe_cuda();
  }
}

#ifdef LOOM_WITH_CUDA
TEST(CudaRuntime, ErrorsNameTheFailingCall) {
  const std::string err = test::error_of([] { LOOM_CUDA_CHECK(cudaErrorInvalidValue); });
  EXPECT_NE(err.find("CUDA error in cudaErrorInvalidValue"), std::string::npos) << err;
  EXPECT_NE(err.find("cuda_runtime_test.cpp:"), std::string::npos) << err;
  const std::string blas = test::error_of([] { LOOM_CUDA_CHECK(CUBLAS_STATUS_NOT_SUPPORTED); });
  EXPECT_NE(blas.find("cuBLAS error in CUBLAS_STATUS_NOT_SUPPORTED"), std::string::npos) << blas;
}

TEST(CudaRuntime, KernelsOnAMachineWithoutGpuFailWithNoGpu) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  // The first device use (the compute stream) reports the missing GPU instead of crashing.
  const std::string err =
      test::error_of([] { kernels::cuda::gelu_forward<float>(nullptr, nullptr, 16); });
  EXPECT_NE(err.find("no GPU"), std::string::npos) << err;
}

TEST(CudaRuntime, PoolServesARepeatedStepWithoutCudaMalloc) {
  LOOM_SKIP_WITHOUT_GPU();
  auto& pool = cuda::device_pool();
  auto step = [] {
    cuda::DeviceArray<float> a(1 << 20), b(3000), c(1 << 20);
    kernels::cuda::gelu_forward(c.data(), a.data(), a.size());
  };
  step();
  const size_t after_first = pool.stats().raw_allocs;
  for (int i = 0; i < 3; ++i) step();
  cuda::synchronize();
  EXPECT_EQ(pool.stats().raw_allocs, after_first);
}
#endif

}  // namespace
}  // namespace loom::device
