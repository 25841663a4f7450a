#pragma once
// What the CUDA driver reports about this machine's GPUs (CUDA builds only).
#include <string>

namespace loom::device::cuda {

struct GpuQuery {
  int count = 0;                   // usable devices
  std::string unavailable_reason;  // "" when count > 0
};

// Asks the driver once per process (cudaGetDeviceCount) and remembers the answer.
const GpuQuery& query_gpus();

// Runtime, driver and NCCL versions and one line per GPU, for `loom info`.
std::string describe_gpus();

}  // namespace loom::device::cuda
