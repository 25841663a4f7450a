// communicator_from_env(): picks the backend from how the process was started.
#include <unistd.h>

#include <cstdlib>

#include "loom/comm/communicator.hpp"
#include "loom/comm/environment.hpp"
#include "loom/comm/host_discovery.hpp"
#include "loom/comm/shm/shm_backend.hpp"
#ifdef LOOM_WITH_MPI
#include "loom/comm/mpi/mpi_backend.hpp"
#endif

namespace loom::comm {
namespace {

CommOptions with_env_overrides(CommOptions opts) {
  if (const char* t = std::getenv("LOOM_COMM_TIMEOUT")) {
    opts.timeout_s = std::atof(t);
    LOOM_CHECK(opts.timeout_s > 0, "LOOM_COMM_TIMEOUT='", t, "' is not a positive number");
  }
  if (const char* a = std::getenv("LOOM_COMM_ALGO")) opts.algo = parse_algo(a);
  if (const char* d = std::getenv("LOOM_COMM_DEBUG")) {
    const std::string v = d;
    LOOM_CHECK(v == "0" || v == "1", "LOOM_COMM_DEBUG='", v, "': expected 0 or 1");
    opts.debug = v == "1";
  }
  if (const char* t = std::getenv("LOOM_COMM_TOPOLOGY")) {
    try {
      opts.topology = parse_topology(t);
    } catch (const Error& e) {
      LOOM_FAIL("LOOM_COMM_TOPOLOGY: ", e.what());
    }
  }
  return opts;
}

std::unique_ptr<Backend> make_shm(const RankEnvironment& env, double timeout_s) {
  std::string segment = env.shm_name;
  if (env.launcher == Launcher::Torchrun) {
    // No launcher made a segment: the ranks meet at a name derived from the rendezvous port,
    // which only works when every rank runs on this host.
    LOOM_CHECK(env.local_world_size == env.world_size,
               "torchrun-style launch over ", env.world_size / env.local_world_size,
               " hosts: the shm backend is single-host; use mpirun/srun (mpi backend)");
    segment = "/loom-" + std::to_string(env.master_port);
  }
  LOOM_CHECK(!segment.empty(),
             "backend shm: not started by `loom launch` or by mpirun on a single host");
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_s));
  return shm::make_shm_backend(segment, env.rank, env.world_size, deadline);
}

// Where the world's ranks run: LOOM_HOST_MAP when set (test-only simulation), one host for the
// shm backend (its ranks share one segment), else discovered.
Hosts hosts_of_world(Communicator& world) {
  if (const char* map = std::getenv("LOOM_HOST_MAP")) return parse_host_map(map, world.size());
  if (std::string(world.backend_name()) != "mpi") {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    return single_host(world.size(), host);
  }
  return discover_hosts(world);
}

}  // namespace

std::unique_ptr<Communicator> communicator_from_env(const CommOptions& requested) {
  const CommOptions opts = with_env_overrides(requested);
  const RankEnvironment env = detect_environment();
  std::string backend = opts.backend;
  if (backend == "auto") {
    switch (env.launcher) {
      case Launcher::None: backend = "solo"; break;
      case Launcher::Mpi: backend = "mpi"; break;
      case Launcher::Loom:
      case Launcher::Torchrun: backend = "shm"; break;
    }
  }
  std::unique_ptr<Backend> b;
  if (backend == "solo" || (backend == "shm" && env.launcher == Launcher::None)) {
    b = make_solo_backend();
  } else if (backend == "shm") {
    b = make_shm(env, opts.timeout_s);
  } else if (backend == "mpi") {
#ifdef LOOM_WITH_MPI
    b = mpi::make_mpi_backend();
#else
    LOOM_FAIL("backend mpi: this loom was built without Open MPI (LOOM_WITH_MPI=OFF)");
#endif
  } else {
    LOOM_FAIL("unknown backend '", backend, "' (expected auto, shm or mpi)");
  }
  auto world = std::make_unique<Communicator>(std::move(b), opts, "world");
  world->set_hosts(std::make_shared<const Hosts>(hosts_of_world(*world)));
  LOOM_CHECK(opts.topology != Topology::Hierarchical || world->size() == 1 ||
                 world->hierarchical(),
             "LOOM_COMM_TOPOLOGY=hierarchical: the ", world->size(), " ranks are on ",
             world->hosts()->count(),
             " host(s) and need more than one host, each with the same number (> 1) of them; "
             "use auto or flat");
  return world;
}

}  // namespace loom::comm
