#pragma once
// Predicted memory per rank of a training step, by component, for `loom memory`. The activation
// entries mirror GPTModel's activation plan (model/gpt.cpp: one flat buffer carved into
// 64-element-aligned tensors), the optimizer and gradient entries the data-parallel modes
// (parallel/data_parallel.hpp), the bf16 entries the matmul path (kernels/cpu/matmul.cpp). The
// `loom memory` test keeps the prediction within 10% of a measured peak RSS, so drift shows.
// Activation recomputation changes how many blocks' activations are kept. Tensor and pipeline
// parallelism have no inputs here yet; each will add its own term where it changes a component.
#include <cstddef>
#include <string>
#include <vector>

#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/model/recompute.hpp"

namespace loom {

struct MemoryOptions {
  GPTConfig model;
  int batch = 4;
  int seq = 256;
  int threads = 1;  // OpenMP threads (the attention keeps scratch per thread)
  kernels::MatmulPrecision precision = kernels::MatmulPrecision::kF32;
  int world = 1;    // data-parallel ranks
  int zero = 0;     // ZeRO stage 0, 1, 2
  double bucket_mb = 25;  // gradient bucket size (ZeRO-2's pool buffers)
  Recompute recompute = Recompute::kNone;
  size_t shm_channel_bytes = 8 * 512 * 1024;  // one shm ring channel (slots x slot_bytes)
};

struct MemoryItem {
  std::string group;  // "model state", "activations", "bf16", "communication"
  std::string name;
  double bytes;
};

// Every component, in a fixed order (zero-byte items are left out).
std::vector<MemoryItem> predict_memory(const MemoryOptions& o);
double total_bytes(const std::vector<MemoryItem>& items);

}  // namespace loom
