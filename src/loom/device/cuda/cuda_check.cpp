#include "loom/device/cuda/cuda_check.hpp"

#include <cstring>

#include "loom/core/check.hpp"

namespace loom::device::cuda {

namespace {
const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}
}  // namespace

void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  LOOM_FAIL("CUDA error in ", call, " (", base_name(file), ":", line,
            "): ", cudaGetErrorName(status), ": ", cudaGetErrorString(status));
}

void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  LOOM_FAIL("cuBLAS error in ", call, " (", base_name(file), ":", line, "): status ",
            static_cast<int>(status));
}

}  // namespace loom::device::cuda
