// `loom nccl check`: every collective of the NCCL backend against the host backend (shm or mpi)
// on this job's ranks, one GPU per local rank (ranks share GPUs when there are fewer). Run it
// under `loom launch --nproc N` or mpirun.
#include <iostream>
#include <memory>

#include "command_registry.hpp"
#include "loom/comm/communicator.hpp"
#include "loom/comm/environment.hpp"
#include "loom/device/device.hpp"
#ifdef LOOM_WITH_CUDA
#include "nccl/nccl_check.hpp"
#endif

namespace {

struct Options {
  double timeout_s = 60;
  int stall_rank = -1;
};

int run(const Options& o) {
  loom::device::require_cuda("nccl check");
#ifdef LOOM_WITH_CUDA
  loom::comm::CommOptions copts;
  copts.timeout_s = o.timeout_s;
  auto host = loom::comm::communicator_from_env(copts);
  const int device =
      loom::comm::detect_environment().local_rank % loom::device::cuda_device_count();
  const auto res = loom::comm::nccl::run_nccl_check(*host, device, o.stall_rank);
  for (const auto& f : res.failures) std::cerr << "nccl check: FAILED " << f << "\n";
  if (host->rank() == 0 || !res.failures.empty())
    std::cout << "nccl check: " << host->size()
              << " ranks: " << res.cases - static_cast<int>(res.failures.size()) << "/" << res.cases
              << " cases match the " << host->backend_name() << " results\n";
  return res.failures.empty() ? 0 : 1;
#else
  (void)o;
  return 1;  // unreachable: require_cuda throws in a build without CUDA
#endif
}

const bool registered = loom::cli::register_command(
    "nccl check",
    "Check the NCCL backend's collectives against the host backend on this job's ranks",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--timeout", o->timeout_s, "Seconds each call may take")
          ->capture_default_str();
      app.add_option("--stall-rank,--stall_rank", o->stall_rank,
                     "This rank joins NCCL and then stops taking part (the others must time out)");
      return [o] { return run(*o); };
    });

}  // namespace
