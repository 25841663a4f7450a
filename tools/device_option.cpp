#include "device_option.hpp"

#include "loom/core/check.hpp"
#include "loom/device/device.hpp"

namespace loom::cli {

void add_device_option(CLI::App& app, std::string& device) {
  app.add_option("--device", device, "cpu, or cuda (one GPU per rank)")->capture_default_str();
}

void check_device(const std::string& device, const std::string& command) {
  if (device::parse_device(device, "--device") == device::Device::kCpu) return;
  device::require_cuda("--device cuda");
  LOOM_FAIL("--device cuda: ", command,
            " cannot run on the GPU yet: the CUDA kernels, cuBLASLt GEMMs and the NCCL backend "
            "are built, but the model and trainer do not use them (issue 12)");
}

}  // namespace loom::cli
