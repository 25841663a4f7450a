#pragma once
// The training loop. One optimizer step is
//   for each of grad_accum micro-batches: forward, backward (gradients accumulate, scaled 1/accum)
//   -> [data parallel: all-reduce of the gradients over ranks goes here]
//   -> global-norm clipping -> AdamW step at the schedule's learning rate.
// Each rank reads its share of every batch through a DistributedSampler (rank, world); rank 0
// alone prints, writes the metrics log and saves checkpoints. A resumed run reproduces the
// uninterrupted run bit for bit (same world layout and threads): parameters, moments, step, data
// position and dropout RNG are all restored.
#include <cstdint>
#include <memory>
#include <string>

#include "loom/model/gpt.hpp"
#include "loom/train/train_config.hpp"

namespace loom {

struct StepStats {
  double loss = 0;       // mean over the step's micro-batches
  float lr = 0;
  double grad_norm = 0;  // before clipping
  bool clipped = false;
  double seconds = 0;
  double tokens_per_s = 0;
};

struct EvalStats {
  double train_loss = 0;
  double val_loss = 0;
};

class Trainer {
 public:
  // Builds the model (initialised from train.seed), datasets, sampler and optimizer; checks the
  // data against the config. Writes nothing.
  explicit Trainer(const RunConfig& config, int rank = 0, int world = 1);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Restores everything from a checkpoint: a step_XXXXXX directory or a `latest` file. The
  // checkpoint's model config must equal this run's.
  void resume(const std::string& checkpoint);

  // Trains to max_steps with console output, metrics, evaluation, samples and checkpoints.
  // A fresh (not resumed) run refuses an out_dir that already holds checkpoints.
  void run();

  // The pieces run() is made of.
  StepStats step();
  EvalStats evaluate();
  std::string sample();  // sample_prompt + generated text, decoded
  std::string save();    // returns the checkpoint directory

  int64_t steps_done() const;
  const RunConfig& config() const;
  GPT& model();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom
