#pragma once
// --device for the commands that can be asked to run on a GPU (train, bench train).
#include <CLI/CLI.hpp>
#include <string>

namespace loom::cli {

// Adds --device (cpu or cuda) to `app`. The value is checked while the command line is parsed,
// before the command runs: cpu passes; cuda fails with "--device cuda: no GPU: <why>" on a
// machine (or build) without one and, with a GPU, says that `command` cannot run there yet: the
// CUDA kernels, cuBLASLt GEMMs and NCCL backend exist (kernels/cuda, comm/nccl), but the model
// and trainer do not dispatch to them.
void add_device_option(CLI::App& app, const std::string& command);

}  // namespace loom::cli
