#pragma once
// --device for the commands that can be asked to run on a GPU (train, bench train).
#include <CLI/CLI.hpp>
#include <string>

namespace loom::cli {

void add_device_option(CLI::App& app, std::string& device);

// Returns when `command` can run on `device` here (cpu always). cuda throws "--device cuda: no
// GPU: <why>" on a machine (or build) without one, and with a GPU says that the device-resident
// model is not built yet: the CUDA kernels, cuBLASLt GEMMs and NCCL backend exist (kernels/cuda,
// comm/nccl) but the model and trainer do not dispatch to them.
void check_device(const std::string& device, const std::string& command);

}  // namespace loom::cli
