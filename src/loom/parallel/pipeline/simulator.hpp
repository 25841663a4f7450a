#pragma once
// Predicts what a schedule does in time and memory from per-action costs: every stage runs its
// action list in order; a compute action starts when the stage is free and its input has
// arrived (a send's message arrives p2p_s after the send); sends and receives cost the stage
// nothing (they are non-blocking). The same walk proves a schedule deadlock-free: if no stage
// can move and some have actions left, simulate() throws naming each stuck stage and what it
// waits for.
#include <vector>

#include "loom/parallel/pipeline/schedule.hpp"

namespace loom::pipeline {

// Cost of one micro-batch through one chunk.
struct ChunkCost {
  double f = 1, b = 1, w = 1;   // seconds (or any unit) of F, B and W
  double activation_bytes = 0;  // held from F until W
};

struct SimCosts {
  std::vector<std::vector<ChunkCost>> chunk;  // [stage][chunk]; empty: 1, 1, 1, 0 everywhere
  double p2p_s = 0;                           // send -> arrival
  const ChunkCost& at(int stage, int c) const;
};

struct SimResult {
  double step_s = 0;                       // when the last stage finishes
  std::vector<double> busy_s;              // per stage: time computing
  std::vector<double> bubble;              // per stage: idle share of the step, 1 - busy / step
  double bubble_fraction = 0;              // mean over stages
  std::vector<int> peak_in_flight;         // per stage: most (micro-batch, chunk) pairs between F and W
  std::vector<double> peak_activation_bytes;  // per stage
  std::vector<std::vector<double>> start;  // [stage][action index] start time
};

SimResult simulate(const Schedule& schedule, const SimCosts& costs = {});

}  // namespace loom::pipeline
