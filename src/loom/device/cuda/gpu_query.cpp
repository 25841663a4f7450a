#include "loom/device/cuda/gpu_query.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <sstream>

namespace loom::device::cuda {

const GpuQuery& query_gpus() {
  static const GpuQuery q = [] {
    GpuQuery r;
    const cudaError_t err = cudaGetDeviceCount(&r.count);
    if (err != cudaSuccess) {
      r.count = 0;
      int driver = 0;
      cudaDriverGetVersion(&driver);
      // Without a driver the runtime reports cudaErrorInsufficientDriver, which reads as if a
      // newer driver would help; say what is actually missing.
      r.unavailable_reason =
          driver == 0
              ? std::string("no NVIDIA driver on this machine (") + cudaGetErrorName(err) + ")"
              : std::string("the CUDA driver reports ") + cudaGetErrorName(err) + " (" +
                    cudaGetErrorString(err) + ")";
      cudaGetLastError();  // clear the sticky-free error so later queries start clean
    } else if (r.count == 0) {
      r.unavailable_reason = "the CUDA driver sees no device";
    }
    return r;
  }();
  return q;
}

namespace {
std::string version_text(int v) {  // 12040 -> "12.4"
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}
}  // namespace

std::string describe_gpus() {
  std::ostringstream os;
  int runtime = 0, driver = 0, nccl = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  ncclGetVersion(&nccl);
  os << "cuda runtime: " << version_text(runtime)
     << ", driver: " << (driver ? version_text(driver) : std::string("none"))
     << ", nccl: " << nccl / 10000 << "." << nccl / 100 % 100 << "." << nccl % 100 << "\n";
  const GpuQuery& q = query_gpus();
  if (q.count == 0) {
    os << "gpus: no GPU (" << q.unavailable_reason << ")\n";
    return os.str();
  }
  for (int d = 0; d < q.count; ++d) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
    os << "gpu " << d << ": " << p.name << ", " << (p.totalGlobalMem >> 20) << " MiB, sm_"
       << p.major << p.minor << ", " << p.multiProcessorCount << " SMs\n";
  }
  return os.str();
}

}  // namespace loom::device::cuda
