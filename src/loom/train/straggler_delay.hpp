#pragma once
// The straggler knob (--straggler RANK:FACTOR, train_config.hpp) where it acts: on that world
// rank a step's compute takes FACTOR times as long, the rank sleeping for the difference after
// it. A parameter-server worker and a rank of the other layouts (all-reduce data parallelism,
// whose every step then waits for it) slow down the same way.
#include <chrono>
#include <thread>

#include "loom/config/train_config.hpp"

namespace loom {

class StragglerDelay {
 public:
  StragglerDelay(const Straggler& s, int world_rank)
      : factor_(s.rank == world_rank ? s.factor : 1.0) {}

  // After a compute of `seconds`: sleeps (FACTOR - 1) x as long on the straggler.
  void after(double seconds) const {
    if (factor_ > 1) std::this_thread::sleep_for(std::chrono::duration<double>(seconds * (factor_ - 1)));
  }

 private:
  double factor_;
};

}  // namespace loom
