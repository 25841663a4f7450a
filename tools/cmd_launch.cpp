// `loom launch --nproc N [--max_restarts K] -- <loom command ...>`: N local ranks (shm backend).
#include <memory>

#include "command_registry.hpp"
#include "loom/launch/capacity.hpp"
#include "loom/launch/launcher.hpp"

namespace {

struct Options {
  int nproc = 1;
  std::vector<std::string> command;
  loom::launch::LaunchOptions launch;
  bool oversubscribe = false;
};

const bool registered = loom::cli::register_command(
    "launch",
    "Run a loom command as N local ranks (shared-memory backend); rank 0 prints plainly, other "
    "ranks' lines are prefixed with the rank; the job stops at the first failed rank",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--nproc,-n", o->nproc, "Number of ranks")->required();
      app.add_option("--max_restarts", o->launch.max_restarts,
                     "Restart all ranks up to this many times after a failure");
      app.add_option("--grace", o->launch.grace_s,
                     "Seconds between SIGTERM and SIGKILL when stopping ranks after a failure "
                     "(time to finish a checkpoint being written)")
          ->capture_default_str();
      app.add_flag("--oversubscribe", o->oversubscribe,
                   "Start the ranks even when there are more than the cores can run");
      app.add_option("command", o->command, "The loom command to run, after --")
          ->required();
      app.footer(
          "SIGTERM/SIGINT is passed to every rank once (loom train saves and exits 0); a second "
          "one stops them at once.\nExamples: loom launch --nproc 4 -- comm check\n"
          "  loom launch --nproc 4 --max_restarts 3 -- train --config configs/tiny.json --resume auto");
      return [o] {
        if (!o->oversubscribe) loom::launch::check_job_fits(o->nproc, 0, loom::launch::host_capacity());
        return loom::launch::launch_local(o->nproc, o->command, o->launch);
      };
    });

}  // namespace
