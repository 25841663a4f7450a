#pragma once
// Preemption (Slurm's SIGTERM before a job is killed, Ctrl-C): while a PreemptionWatch exists,
// the first SIGTERM or SIGINT only sets a flag, which the trainer reads at the next step
// boundary (all ranks then agree on that step, checkpoint and exit 0); that first signal puts
// both back to their default action, so a second one ends the process at once.
namespace loom {

class PreemptionWatch {
 public:
  PreemptionWatch();   // installs the handlers
  ~PreemptionWatch();  // restores the previous ones
  PreemptionWatch(const PreemptionWatch&) = delete;
  PreemptionWatch& operator=(const PreemptionWatch&) = delete;

  // The signal received (SIGTERM or SIGINT), or 0.
  int signal() const;
};

}  // namespace loom
