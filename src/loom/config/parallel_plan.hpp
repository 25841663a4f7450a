#pragma once
// The layout of a training run, resolved once from its RunConfig and the world size: the mesh
// (who holds which piece of the model), how a step is cut (stages, schedule, micro-batches,
// virtual stages), and what every strategy reads (precision asked and resolved, recompute, ZeRO
// stage, gradient reduction, device). The trainer is built from it; `loom info`, `loom plan`
// (its chosen layout), `loom memory` and `loom train` build the same object and print the same
// describe() line for the same flags.
// pp 1 is a pipeline of one stage: the one-stage 1F1B schedule with one micro-batch per batch.
#include <string>
#include <vector>

#include "loom/config/train_config.hpp"
#include "loom/device/device.hpp"
#include "loom/parallel/mesh.hpp"

namespace loom {

struct ParallelPlan {
  int world = 1;
  parallel::MeshShape mesh;  // pp x dp x tp, dp = world / (pp x tp); ep inside dp
  // Expert parallelism: the experts of each MoE block split over ep of the dp ranks (= mesh.ep).
  int ep = 1;
  // Sequence parallelism splits ranks further once it lands; until then 1.
  int sp = 1;
  // Blocks per stage when known before start-up (one stage; --partition); empty: balanced by
  // costs timed at start-up (pipeline::stage_partition).
  std::vector<int> stage_blocks;
  pipeline::ScheduleKind schedule = pipeline::ScheduleKind::OneFOneB;
  int micro_batches = 1;   // per batch (batch_size / micro_batches sequences each)
  int virtual_stages = 1;  // model chunks per pipeline rank
  kernels::MatmulPrecision precision_asked = kernels::MatmulPrecision::kF32;
  kernels::MatmulPrecision precision = kernels::MatmulPrecision::kF32;  // what runs here
  Recompute recompute = Recompute::kNone;
  int zero = 0;  // ZeRO stage
  GradReduce grad_reduce = GradReduce::kF32;
  double bucket_mb = 25;
  device::Device device = device::Device::kCpu;  // the model and trainer run on the CPU

  // One line: "plan: 4 ranks = pp 2 x dp 1 x tp 2 x ep 1 x sp 1 | stages balanced ... | ...".
  std::string describe() const;
};

// The plan of `config` (validated by parse_run_config) on `world` ranks. Throws loom::Error
// naming --tp or --pp when they do not divide the world, --ep when it does not divide dp.
ParallelPlan make_parallel_plan(const RunConfig& config, int world);

}  // namespace loom
