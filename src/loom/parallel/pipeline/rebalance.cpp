#include "loom/parallel/pipeline/rebalance.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "loom/core/check.hpp"

namespace loom::pipeline {
namespace {

std::string ms(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
  return buf;
}

// The start-up costs of `p` with every part of stage s scaled by ratio[s].
PartCosts corrected_costs(const Partition& p, const std::vector<double>& ratio) {
  PartCosts c = p.parts;
  for (int s = 0; s < p.stages(); ++s)
    for (int b = p.first[s]; b < p.first[s + 1]; ++b) c.block[b] *= ratio[s];
  c.embedding *= ratio.front();
  c.head *= ratio.back();
  return c;
}

}  // namespace

RebalanceDecision decide_rebalance(const Partition& current, const std::vector<double>& measured_s,
                                   double threshold) {
  const int S = current.stages();
  LOOM_CHECK(static_cast<int>(measured_s.size()) == S, "rebalance: ", measured_s.size(),
             " measured stage times for ", S, " stages");
  RebalanceDecision d;
  d.measured_s = measured_s;
  const double slowest = *std::max_element(measured_s.begin(), measured_s.end());
  const double mean = std::accumulate(measured_s.begin(), measured_s.end(), 0.0) / S;
  d.slowest_over_mean = mean > 0 ? slowest / mean : 1.0;
  d.imbalanced = d.slowest_over_mean > 1.0 + threshold;
  if (!d.imbalanced) return d;
  // A stage predicted at cost c and measured at t runs its parts t / c times slower than the
  // start-up costs say; blocks keep their own stage's ratio wherever they move.
  std::vector<double> ratio(S);
  for (int s = 0; s < S; ++s)
    ratio[s] = current.cost[s] > 0 ? measured_s[s] / current.cost[s] : 1.0;
  d.next = balanced_partition(corrected_costs(current, ratio), S);
  // Under the corrected costs the current partition's slowest stage is the measured one; a move
  // must beat it by more than rounding (ties leave the blocks where they are).
  d.repartition = d.next.first != current.first && d.next.slowest() < slowest * (1 - 1e-6);
  return d;
}

std::string RebalanceDecision::describe(const Partition& current) const {
  const double total = std::accumulate(measured_s.begin(), measured_s.end(), 0.0);
  std::string s = "median compute per step:";
  for (size_t k = 0; k < measured_s.size(); ++k) {
    char share[32];
    const double pct = total > 0 ? 100.0 * measured_s[k] / total : 0.0;
    std::snprintf(share, sizeof share, " (%.1f%%)", pct);
    s += detail::concat(k ? ", " : " ", "stage ", k, " ", ms(measured_s[k]), share);
  }
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%.2fx", slowest_over_mean);
  s += detail::concat("; slowest ", ratio, " the mean");
  if (!imbalanced) return s + " -> balanced, partition kept (blocks " + current.blocks_text() + ")";
  if (!repartition)
    return s + " -> no contiguous partition has a faster slowest stage, kept (blocks " +
           current.blocks_text() + ")";
  return s + " -> re-partition at the next checkpoint: blocks " + current.blocks_text() + " -> " +
         next.blocks_text() + " (predicted slowest stage " + ms(next.slowest()) + ", measured " +
         ms(*std::max_element(measured_s.begin(), measured_s.end())) + ")";
}

Rebalancer::Rebalancer(const Partition& current, int steps, double threshold)
    : current_(current), steps_(steps), threshold_(threshold) {
  LOOM_CHECK(steps >= 1, "--rebalance_steps must be >= 1, got ", steps);
}

void Rebalancer::after_step(comm::Communicator& world, int pp_rank, int ranks_per_stage,
                            double compute_s) {
  constexpr int kFirst = 2;  // the first measured step of this process
  ++calls_;
  const double step_s = compute_s - last_s_;
  last_s_ = compute_s;
  if (finished_ || pending_ || calls_ < kFirst) return;
  step_s_.push_back(step_s);
  if (static_cast<int>(step_s_.size()) < steps_) return;
  // The median step: a step slowed down by another process on the core does not count.
  std::nth_element(step_s_.begin(), step_s_.begin() + steps_ / 2, step_s_.end());
  const int S = current_.stages();
  std::vector<float> per_stage(S, 0.0f);  // mean over the stage's ranks
  per_stage[pp_rank] = static_cast<float>(step_s_[steps_ / 2] / ranks_per_stage);
  world.allreduce(per_stage.data(), per_stage.size());
  // One rank decides, so every rank adopts the same blocks whatever its rounding.
  std::vector<float> first(S + 2, 0.0f);  // repartition flag, then the new stage starts
  if (world.rank() == 0) {
    const std::vector<double> measured(per_stage.begin(), per_stage.end());
    const RebalanceDecision d = decide_rebalance(current_, measured, threshold_);
    std::cout << "rebalance (steps " << kFirst << "-" << kFirst + steps_ - 1
              << " of this run): " << d.describe(current_) << std::endl;
    if (d.repartition) {
      first[0] = 1;
      for (int k = 0; k <= S; ++k) first[k + 1] = static_cast<float>(d.next.first[k]);
    }
  }
  world.broadcast(first.data(), first.size(), 0);
  finished_ = first[0] == 0;
  if (finished_) return;
  next_blocks_.clear();
  for (int k = 0; k < S; ++k) next_blocks_.push_back(static_cast<int>(first[k + 2] - first[k + 1]));
  pending_ = true;
}

}  // namespace loom::pipeline
