#pragma once
// A small synthetic planner request (12 blocks of width 96, 16 sequences of 64 tokens) shared by
// the planner tests, so layouts and bubbles can be checked without timing anything.
#include "loom/parallel/planner/planner.hpp"

namespace loom::planner::test {

inline PlanRequest small_request(int world) {
  PlanRequest r;
  r.model.vocab_size = 1000;
  r.model.context_len = 64;
  r.model.n_layer = 12;
  r.model.n_head = 12;
  r.model.d_model = 96;
  r.world = world;
  r.global_batch = 16;
  r.seq = 64;
  return r;
}

}  // namespace loom::planner::test
