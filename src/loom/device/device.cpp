#include "loom/device/device.hpp"

#include "loom/core/check.hpp"
#ifdef LOOM_WITH_CUDA
#include "loom/device/cuda/gpu_query.hpp"
#endif

namespace loom::device {

Device parse_device(const std::string& s, const std::string& what) {
  if (s == "cpu") return Device::kCpu;
  if (s == "cuda" || s == "gpu") return Device::kCuda;
  LOOM_FAIL(what, ": unknown device '", s, "' (expected cpu or cuda)");
}

const char* device_name(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

#ifdef LOOM_WITH_CUDA
int cuda_device_count() { return cuda::query_gpus().count; }
std::string cuda_unavailable_reason() { return cuda::query_gpus().unavailable_reason; }
std::string describe_cuda() { return cuda::describe_gpus(); }
#else
int cuda_device_count() { return 0; }
std::string cuda_unavailable_reason() {
  return "this loom was built without CUDA (nvcc not found at configure time, or "
         "-DLOOM_WITH_CUDA=OFF)";
}
std::string describe_cuda() { return "cuda: not built (" + cuda_unavailable_reason() + ")\n"; }
#endif

void require_cuda(const std::string& what) {
  const std::string reason = cuda_unavailable_reason();
  LOOM_CHECK(reason.empty(), what, ": no GPU: ", reason);
}

}  // namespace loom::device
