#pragma once
// The local launcher behind `loom launch` and `loom train --nproc N`: runs N copies of a loom
// command as the ranks of one job on this host (shm backend), prints rank 0's lines as they are
// and prefixes other ranks' lines with "[rank r] ", and watches them. The first rank that fails
// (non-zero exit or a signal) is reported with its exit code or signal, and the others are
// stopped: SIGTERM, then SIGKILL after a grace period, long enough for rank 0 to finish a
// checkpoint it is writing in the background (a stopped rank, which can finish nothing, is
// killed at once; others end within ms, their collectives failing). With max_restarts > 0 the
// whole job is
// then started again; ranks see how often in LOOM_RESTART_COUNT (`train --resume auto` continues
// from the latest checkpoint). SIGTERM/SIGINT to the launcher is passed to every rank once and
// the launcher waits for them (the trainer saves and exits 0: preemption); a second signal kills
// them at once. An interrupted job is never restarted.
//
// Elastic jobs (torchrun's --nnodes MIN:MAX idea, on ranks): a rank that could not join its job
// (exit code comm::kRankStartFailureExitCode) is lost, and the restart goes on with fewer ranks:
// the largest world in [min_nproc, ranks left] the job accepts (Elastic::command_for). Lost ranks
// are not taken back later. Without Elastic every restart starts all nproc ranks again.
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace loom::launch {

// What each rank of an elastic job runs at a world of n ranks.
struct ElasticCommand {
  std::vector<std::string> args;
  std::string note;  // what changed for n ranks, for the log (e.g. the raised grad_accum)
};

struct Elastic {
  int min_nproc = 1;
  // The command at a world of n ranks; nullopt when the job cannot run on n (why says why).
  std::function<std::optional<ElasticCommand>(int n, std::string* why)> command_for;
};

struct LaunchOptions {
  int max_restarts = 0;
  double grace_s = 30;                     // between SIGTERM and SIGKILL
  std::string program = "/proc/self/exe";  // the loom binary the ranks run
  std::optional<Elastic> elastic;          // none: every restart starts nproc ranks
  // Ranks from this one on may end badly without stopping the job (parameter-server workers in
  // async and ssp mode, which the servers drop): the launcher names them and waits for the
  // others; once those have all ended well, one still running (dropped as hung) is killed.
  // -1: every rank's failure stops the job.
  int expendable_from = -1;
};

// Runs `program args...` as nproc ranks; returns 0 when all succeed, else the failed rank's exit
// code (128 + signal number for a signal) of the last attempt.
int launch_local(int nproc, const std::vector<std::string>& args, const LaunchOptions& opts);

}  // namespace loom::launch
