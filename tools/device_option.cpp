#include "device_option.hpp"

#include "loom/core/check.hpp"
#include "loom/device/device.hpp"

namespace loom::cli {

namespace {
void check_device(const std::string& value, const std::string& command) {
  if (device::parse_device(value, "--device") == device::Device::kCpu) return;
  device::require_cuda("--device cuda");
  LOOM_FAIL("--device cuda: ", command,
            " cannot run on the GPU yet: the CUDA kernels, cuBLASLt GEMMs and the NCCL backend "
            "are built, but the model and trainer do not use them (issue 12)");
}
}  // namespace

void add_device_option(CLI::App& app, const std::string& command) {
  // A refusal is a loom::Error: main() prints it without the usage hint of a parse error.
  app.add_option_function<std::string>(
         "--device", [command](const std::string& value) { check_device(value, command); },
         "cpu, or cuda (one GPU per rank)")
      ->default_str("cpu");
}

}  // namespace loom::cli
