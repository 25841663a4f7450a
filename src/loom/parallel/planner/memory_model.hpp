#pragma once
// Predicted memory per rank of a training step, by component, for `loom memory`, `loom train`'s
// capacity check (run_memory.hpp) and the planner (planner.hpp), which share its model state
// (model_state_bytes) and its activation shapes (activation_shape). The activation entries are
// the executors' own activation plan (model/activation_plan), the optimizer and gradient entries
// the data-parallel modes (parallel/data_parallel.hpp), the bf16 entries the matmul path
// (kernels/cpu/matmul.cpp). The `loom memory` test keeps the prediction within 2% of a measured
// peak RSS, so drift shows.
// Activation recomputation changes how many blocks' activations are kept. Tensor parallelism
// splits the column- and row-parallel tensors (parameters, qkv, attention, MLP, logits) while the
// residual stream and LayerNorm outputs stay whole; a pipeline stage holds its blocks, one
// activation set per micro-batch in flight (counted from the schedule's action list), and the
// P2P buffers of its lanes. Every rank of a mesh position predicts the same; stages differ.
#include <cstddef>
#include <string>
#include <vector>

#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/model/model_shard.hpp"
#include "loom/model/recompute.hpp"
#include "loom/parallel/pipeline/schedule.hpp"

namespace loom {

struct MemoryOptions {
  GPTConfig model;
  int batch = 4;
  int seq = 256;
  int threads = 1;  // OpenMP threads (the attention keeps scratch per thread)
  kernels::MatmulPrecision precision = kernels::MatmulPrecision::kF32;
  int world = 1;    // data-parallel ranks
  int zero = 0;     // ZeRO stage 0, 1, 2 or 3
  double bucket_mb = 25;  // gradient bucket size (ZeRO-2's pool buffers)
  Recompute recompute = Recompute::kNone;
  int shm_slots = 8;                  // slots of one shm ring channel (comm/shm Config)
  size_t shm_slot_bytes = 512 * 1024;  // bytes of one slot
  int tp = 1;                // tensor-parallel ranks (must divide n_head)
  int pp = 1;                // pipeline stages
  int micro_batches = 0;     // pp > 1: micro-batches per step (0: pp); must divide batch
  pipeline::ScheduleKind schedule = pipeline::ScheduleKind::OneFOneB;
  // pp > 1: the partition, first block of each stage then n_layer (pp + 1 entries); empty: the
  // blocks split evenly (the first stages take one more when pp does not divide n_layer).
  std::vector<int> stage_first;
  int stage = 0;             // the pipeline stage predicted
};

// Checks tp, pp, micro_batches, schedule, zero, stage and stage_first against the model; throws
// loom::Error naming the flag (--tp, --pp, --micro_batches, ...) and the valid values.
void check_memory_layout(const MemoryOptions& o);

// Parameters (elements) a rank holding `shard` keeps (its chunks' blocks, its ends, its tp
// slice), from the formula of the layout (model/param_layout.cpp) rather than the layout itself,
// so a test can compare.
double shard_params(const GPTConfig& c, const ModelShard& shard);
// The same for o's rank (its tp slice of stage o.stage).
double rank_params(const MemoryOptions& o);

// Bytes of a rank's model state (f32): parameters, gradients and AdamW moments.
struct ModelStateBytes {
  double parameters = 0, gradients = 0, moments = 0;
  double total() const { return parameters + gradients + moments; }
};
// The model state of a rank holding `shard` among `dp` data-parallel ranks at ZeRO stage `zero`:
// ZeRO-1 shards the moments; ZeRO-2 also the gradients (ShardedGradients' plan: a pool of
// `bucket_mb` buckets, the embedding's buffer and this rank's shard); ZeRO-3 also the parameters
// (this rank's shard of every unit, plus working buffers for the ends, wte + wpe + ln_f, and two
// blocks) with a gradient bucket per unit. The largest shard is predicted (data-parallel rank 0).
// ZeRO-2 and 3 run without pipeline parallelism (the shard holds the embedding and the head).
ModelStateBytes model_state_bytes(const GPTConfig& c, const ModelShard& shard, int dp, int zero,
                                  double bucket_mb);

// What the executors plan one activation set of chunk `chunk` of `shard` for (as
// ChunkExecutor does): its blocks, the embedding when it is the shard's first chunk and the
// shard has it, the head likewise for the last, the shard's tp, and one forward's shape.
struct ForwardShape {
  int batch = 1, seq = 1;  // rows and tokens of one (micro-)batch
  Recompute recompute = Recompute::kNone;
  bool split_backward = false;
  int threads = 1;
};
ActivationShape activation_shape(const GPTConfig& c, const ModelShard& shard, int chunk,
                                 const ForwardShape& f);
// The ModelShard of o's rank (tp rank 0; every tp rank predicts the same).
ModelShard rank_shard(const MemoryOptions& o);

// Most activation sets a stage holds at once under o's schedule: +1 at each F, -1 when its
// micro-batch is done (B, or W for split-backward schedules). 1 without a pipeline.
int activation_sets_in_flight(const MemoryOptions& o);
// Most sets holding their B-only buffers at once: from F to B (as above without a split backward).
int b_only_sets_in_flight(const MemoryOptions& o);

// The activation plan (model/activation_plan) of o's stage for one micro-batch.
ActivationBytes rank_activations(const MemoryOptions& o);

struct MemoryItem {
  std::string group;  // "model state", "activations", "bf16", "communication"
  std::string name;
  double bytes;
};

// Every component, in a fixed order (zero-byte items are left out).
std::vector<MemoryItem> predict_memory(const MemoryOptions& o);
double total_bytes(const std::vector<MemoryItem>& items);

}  // namespace loom
