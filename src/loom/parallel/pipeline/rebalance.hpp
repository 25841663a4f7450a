#pragma once
// --rebalance (seed 001 "load balancing", the dynamic variant). The start-up partition balances
// part costs timed once, on one rank, before training: they can be wrong for the run (ranks
// sharing cores, caches, a stage's kernels behaving unlike the calibration's). So each stage
// measures its own compute time (F, B and W actions, not the waits between them) over a window
// of early steps, and the stages agree on the times. If the slowest stage exceeds the mean by
// more than the threshold, each stage's start-up part costs are scaled by its measured /
// predicted ratio and balanced again; a partition whose slowest stage would be faster than
// today's is then adopted at the next checkpoint: the trainer saves, re-builds this rank's
// stage with the new blocks and loads what it just saved (any layout loads any checkpoint), so
// the run continues with the same numbers.
#include <cstdint>
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/parallel/pipeline/partition.hpp"

namespace loom::pipeline {

struct RebalanceDecision {
  std::vector<double> measured_s;  // per stage: compute seconds per step
  double slowest_over_mean = 1;
  bool imbalanced = false;   // slowest_over_mean > 1 + threshold
  Partition next;            // balanced over the corrected costs (imbalanced only)
  bool repartition = false;  // imbalanced, and `next` has a faster slowest stage
  // "median compute per step: stage 0 1.20 ms (17.6%), stage 1 5.61 ms (82.4%); slowest 1.65x
  // the mean -> ..." (what is done about it, with the old and new blocks per stage)
  std::string describe(const Partition& current) const;
};

// The decision for `current` (its `parts` and `cost` are the start-up prediction) given the
// measured compute seconds per step of each stage. Throws if the sizes differ.
RebalanceDecision decide_rebalance(const Partition& current, const std::vector<double>& measured_s,
                                   double threshold);

class Rebalancer {
 public:
  // Measures the `steps` steps from this process's second one (its first warms up allocations
  // and caches). Throws naming --rebalance_steps if steps < 1.
  Rebalancer(const Partition& current, int steps, double threshold = 0.10);

  // Call after every step on every rank with this rank's compute seconds so far (all steps).
  // After the window's last step it is collective over `world` (ranks_per_stage ranks, e.g.
  // dp x tp, measure each stage): each rank's median step, averaged over its stage's ranks, is
  // summed over the world; world rank 0 decides, prints and broadcasts the decision.
  void after_step(comm::Communicator& world, int pp_rank, int ranks_per_stage, double compute_s);

  // A new partition is decided and waits for the next checkpoint.
  bool pending() const { return pending_; }
  const std::vector<int>& next_blocks() const { return next_blocks_; }  // per stage
  // The stages run a re-partitioned layout (this run's, or the resumed checkpoint's run's):
  // nothing more to measure.
  void adopted() {
    pending_ = false;
    finished_ = repartitioned_ = true;
  }
  bool repartitioned() const { return repartitioned_; }

 private:
  Partition current_;
  int steps_;
  double threshold_;
  int64_t calls_ = 0;
  double last_s_ = 0;           // compute seconds after the previous step
  std::vector<double> step_s_;  // per measured step
  bool pending_ = false, finished_ = false, repartitioned_ = false;
  std::vector<int> next_blocks_;
};

}  // namespace loom::pipeline
