#pragma once
// What the parameter servers record about staleness, and the stale-synchronous gate.
//
// Two measures per applied gradient of worker w's step c (0-based clock), computed on
// parameters it pulled when the server had made u_pull updates and the slowest live worker had
// pushed m_pull steps:
//   update staleness  u_apply - u_pull: server updates between the pull and the push (the
//                     issue's definition; under async and ssp every other worker's push counts,
//                     so it reaches workers - 1 even in lock-step);
//   clock staleness   c - m_pull: how many of the slowest worker's steps the parameters lack,
//                     Ho et al.'s measure, which ssp bounds by s (0 in sync mode and at s = 0).
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

namespace loom::ps {

class StalenessHistogram {
 public:
  void add(int64_t staleness) { ++counts_[staleness]; }
  int64_t max() const { return counts_.empty() ? 0 : counts_.rbegin()->first; }
  int64_t total() const;
  // {"0": count, "3": count, ...}: only the values seen.
  nlohmann::json to_json() const;

 private:
  std::map<int64_t, int64_t> counts_;
};

// Per worker: the steps pushed, and whether it still takes part (not stopped, not lost).
class ClockTable {
 public:
  explicit ClockTable(int workers) : pushed_(workers, 0), active_(workers, true) {}
  int workers() const { return static_cast<int>(pushed_.size()); }
  int64_t pushed(int w) const { return pushed_[w]; }
  bool active(int w) const { return active_[w]; }
  int active_count() const;
  void record_push(int w) { ++pushed_[w]; }
  void retire(int w) { active_[w] = false; }
  // The fewest steps pushed by an active worker (its own count when w is the only one).
  int64_t min_active_pushed() const;
  // SSP: may worker w begin its next step (clock pushed(w)) with staleness s? Every active
  // worker must have pushed step pushed(w) - s - 1, i.e. pushed at least pushed(w) - s steps.
  bool may_begin(int w, int64_t s) const { return min_active_pushed() >= pushed_[w] - s; }

 private:
  std::vector<int64_t> pushed_;
  std::vector<bool> active_;
};

}  // namespace loom::ps
