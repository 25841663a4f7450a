#pragma once
// Executes one stage's action list of any Schedule: computes through the stage's chunks, posts
// sends and receives on the P2P lanes without blocking, waits for a receive only in the F or B
// that needs it, frees every buffer as soon as its last user is done. A B directly followed by
// its own W runs as one fused backward. Records when each compute action ran, for bubbles.
#include <vector>

#include "loom/parallel/pipeline/p2p_lanes.hpp"
#include "loom/parallel/pipeline/schedule.hpp"
#include "loom/parallel/pipeline/stage.hpp"

namespace loom::pipeline {

struct ComputeSpan {
  Action action;
  double start_s, end_s;  // on steady_clock, seconds since its epoch
};

struct StepTrace {
  std::vector<ComputeSpan> spans;
  double start_s = 0, end_s = 0;  // the step on this stage, sends completed
  double busy_s() const;
};

// Runs `stage`'s actions of `schedule` once (one training step's micro-batches) with
// chunks[c] = the stage's chunk c. The lanes must come from the stage's pp group (wrapping
// around when the schedule has virtual stages). Throws loom::Error on a failed transfer (naming
// the peer), or a chunk's error, after abandoning the transfers still posted (the lanes are
// unusable afterwards: the stage stops).
StepTrace run_pipeline_step(const Schedule& schedule, int stage,
                            const std::vector<StageChunk*>& chunks, P2PLanes& lanes);

}  // namespace loom::pipeline
