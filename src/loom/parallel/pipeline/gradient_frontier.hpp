#pragma once
// Hands a data-parallel gradient hook (GPT::GradReadyFn) the slices of a step's gradient in the
// order it needs them — from the end of the flat buffer to its start, each slice adjoining the
// previous one — whatever order the pipeline's chunks finish them in. A slice that does not
// adjoin the frontier waits until the gap between them fills.
// `held` (the tied wte under pp > 1, which must be summed over the embedding group first) is
// never passed on by ready(): release_held() passes it on once it is final.
#include <cstddef>
#include <map>

#include "loom/model/gpt.hpp"
#include "loom/parallel/zero_optimizer.hpp"

namespace loom::pipeline {

class GradientFrontier {
 public:
  // count: the gradient buffer's floats; hook: empty makes every call a no-op.
  GradientFrontier(size_t count, GPT::GradReadyFn hook, parallel::FlatRange held = {0, 0});

  // grads[begin, end) is final (less any part inside `held`).
  void ready(size_t begin, size_t end);
  // The held range is final.
  void release_held();
  // Everything at or above it has been passed on.
  size_t frontier() const { return frontier_; }

 private:
  void add(size_t begin, size_t end);
  void advance();

  GPT::GradReadyFn hook_;
  size_t count_;
  parallel::FlatRange held_;
  size_t frontier_;
  std::map<size_t, size_t> waiting_;  // by end: begin
};

}  // namespace loom::pipeline
