#pragma once
// The training loop. One optimizer step is
//   for each of grad_accum micro-batches: forward, backward (gradients accumulate, scaled 1/accum)
//   -> gradients averaged over the data-parallel ranks (parallel::DataParallel: bucketed
//      all-reduce overlapped with the last backward, or ZeRO-1's reduce-scatter)
//   -> global-norm clipping -> AdamW step at the schedule's learning rate.
// Each data-parallel rank reads its share of every batch through a DistributedSampler (dp rank,
// dp size), so N ranks with batch b see exactly the batches of one rank with batch N*b; the tp
// ranks of one replica (parallel::Mesh) share its batch and hold the model's shards, which
// checkpoints store as whole tensors (any layout resumes any checkpoint). Logged losses are
// averaged over the ranks; evaluation splits its windows over the ranks. Rank 0 alone prints,
// writes the metrics log and saves checkpoints, which hold no per-rank state and resume on any
// world size. A resumed run reproduces the uninterrupted run bit for bit (same world layout and
// threads): parameters, moments, step, data position and dropout RNG are all restored.
// Dropout draws from one stream seeded alike on every rank (a rank's masks repeat rank 0's).
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/timer.hpp"
#include "loom/config/train_config.hpp"
#include "loom/model/moe/moe_layer.hpp"

namespace loom {

struct StepStats {
  double loss = 0;       // mean over the step's micro-batches
  float lr = 0;
  double grad_norm = 0;  // before clipping
  bool clipped = false;
  double seconds = 0;
  double tokens_per_s = 0;
  // Mixture-of-experts models: auxiliary losses (not in `loss`, the cross-entropy), dropped
  // share and max/mean expert load, means over the step's forwards and the data-parallel ranks.
  moe::MoeStats moe;
};

struct EvalStats {
  double train_loss = 0;
  double val_loss = 0;
};

class Trainer {
 public:
  // Builds the process mesh (pp x data-parallel x tp ranks), the model shard (initialised from
  // train.seed), datasets, sampler and optimizer; checks the data against the config. Writes
  // nothing. `comm` is the world (it must outlive the trainer; a solo one for a single process).
  Trainer(const RunConfig& config, comm::Communicator& comm);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Restores everything from a checkpoint: a step_XXXXXX directory or a `latest` file. The
  // checkpoint's model config must equal this run's.
  void resume(const std::string& checkpoint);
  // Starts from pretrained weights (a Hugging Face GPT-2 directory or a Loom checkpoint, see
  // pretrained.hpp): parameters only; the optimizer, step and data position stay fresh. The
  // model's shape must equal this run's config (an error names each field that differs).
  void init_from(const std::string& path);

  // Trains to max_steps with console output, metrics, evaluation, samples and checkpoints.
  // A fresh (not resumed) run refuses an out_dir that already holds checkpoints. SIGTERM/SIGINT
  // (preemption) ends it early: all ranks stop after the same step and save it (see
  // preemption.hpp). Returns once every checkpoint is written.
  void run();

  // The pieces run() is made of. step(), evaluate() and save() are collective over the ranks.
  StepStats step();
  EvalStats evaluate();
  std::string sample();  // sample_prompt + generated text, decoded
  // Returns the checkpoint directory (written by rank 0; with train.async_save in the
  // background, finished by the next save or the end of run()).
  std::string save();

  // (No accessor hands out a reference into the trainer's state: --rebalance re-builds it in
  // place, and such a reference would dangle.)
  int64_t steps_done() const;

 private:
  // run()'s loop (`elapsed` since run() began); true when it stopped at a checkpoint for a
  // --rebalance re-partition.
  bool run_until_repartition(const Timer& elapsed);
  // Collective: this rank's stage re-built with `blocks` per pipeline stage on the same mesh
  // (freshly initialised until a checkpoint is loaded into it).
  void rebuild_stage(const std::vector<int>& blocks);
  // --rebalance resuming a checkpoint whose run re-partitioned (its state.json layout says so):
  // the stages take that partition instead of measuring again.
  void adopt_rebalanced_partition(const nlohmann::json& layout, const std::string& dir);
  // What run() carries over a re-partition.
  struct RebuildNote {
    std::vector<int> blocks;  // the new blocks per stage
    std::string old_blocks;
    int64_t step;
    bool main;  // world rank 0
  };

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom
