#include "loom/parallel/pipeline/gradient_frontier.hpp"

#include <algorithm>

#include "loom/core/check.hpp"

namespace loom::pipeline {

GradientFrontier::GradientFrontier(size_t count, GPT::GradReadyFn hook, parallel::FlatRange held)
    : hook_(std::move(hook)), count_(count), held_(held), frontier_(count) {
  LOOM_CHECK(held.begin <= held.end && held.end <= count, "gradient frontier: held range [",
             held.begin, ", ", held.end, ") outside the ", count, " gradients");
}

void GradientFrontier::ready(size_t begin, size_t end) {
  if (!hook_) return;
  LOOM_CHECK(begin <= end && end <= count_, "gradient frontier: slice [", begin, ", ", end,
             ") outside the ", count_, " gradients");
  // The parts below and above the held range.
  add(begin, std::min(end, held_.begin));
  add(std::max(begin, held_.end), end);
  advance();
}

void GradientFrontier::release_held() {
  if (!hook_) return;
  add(held_.begin, held_.end);
  held_ = {0, 0};
  advance();
}

void GradientFrontier::add(size_t begin, size_t end) {
  if (begin >= end) return;
  LOOM_CHECK(end <= frontier_ && waiting_.count(end) == 0, "gradient frontier: slice [", begin,
             ", ", end, ") reported twice");
  waiting_[end] = begin;
}

void GradientFrontier::advance() {
  for (auto it = waiting_.find(frontier_); it != waiting_.end(); it = waiting_.find(frontier_)) {
    const size_t begin = it->second, end = it->first;
    waiting_.erase(it);
    frontier_ = begin;
    hook_(begin, end);
  }
}

}  // namespace loom::pipeline
