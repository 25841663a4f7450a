#pragma once
// CUDA and cuBLAS status codes -> loom::Error naming the call that failed, where, and why:
//   LOOM_CUDA_CHECK(cudaMemcpyAsync(...));   LOOM_CUDA_LAUNCHED("gelu_forward");
#include <cublasLt.h>
#include <cuda_runtime.h>

namespace loom::device::cuda {

void check(cudaError_t status, const char* call, const char* file, int line);
void check(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace loom::device::cuda

#define LOOM_CUDA_CHECK(call) ::loom::device::cuda::check((call), #call, __FILE__, __LINE__)
// After a kernel launch: a bad launch configuration is reported naming the kernel.
#define LOOM_CUDA_LAUNCHED(kernel_name) \
  ::loom::device::cuda::check(cudaGetLastError(), "launch of " kernel_name, __FILE__, __LINE__)
