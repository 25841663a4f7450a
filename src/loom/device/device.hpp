#pragma once
// Which device a command runs on, and what this build and machine offer. Compiled in every build:
// without CUDA (LOOM_WITH_CUDA off) or without a GPU, asking for cuda gives a clear error here
// instead of a failure deep inside a kernel launch.
#include <string>

namespace loom::device {

enum class Device { kCpu, kCuda };

// "cpu" or "cuda"; anything else throws loom::Error naming `what` (a flag) and the choices.
Device parse_device(const std::string& s, const std::string& what);
const char* device_name(Device d);

// Number of usable CUDA devices: 0 in a build without CUDA, on a machine without a GPU or
// without a working driver.
int cuda_device_count();

// Why cuda cannot be used here ("" when it can): no CUDA in this build, or no GPU / driver.
std::string cuda_unavailable_reason();

// Throws loom::Error "<what>: no GPU: <reason>" unless a CUDA device is usable.
void require_cuda(const std::string& what);

// Lines for `loom info`: CUDA runtime/driver and NCCL versions, and every GPU seen (name,
// memory, compute capability), or why there is none.
std::string describe_cuda();

}  // namespace loom::device
