#include "loom/comm/environment.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>
#include <vector>

#include "loom/core/check.hpp"

namespace loom::comm {
namespace {

const char* get(const char* name) { return std::getenv(name); }

int int_var(const char* name, int fallback) {
  return static_cast<int>(integer_env(name, fallback, (1L << 30) - 1));
}

void check_ranks(const RankEnvironment& e, const char* source) {
  LOOM_CHECK(e.world_size >= 1 && e.rank < e.world_size, source, ": rank ", e.rank,
             " is outside a world of ", e.world_size);
  LOOM_CHECK(e.local_world_size >= 1 && e.local_rank < e.local_world_size, source,
             ": local rank ", e.local_rank, " is outside ", e.local_world_size, " local ranks");
}

}  // namespace

long integer_env(const char* name, long fallback, long max) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  LOOM_CHECK(end != v && *end == '\0' && errno != ERANGE && x >= 0 && x <= max, name,
             " must be an integer in [0, ", max, "], got '", v, "'");
  return x;
}

int slurm_tasks_on_node(const std::string& text, int node_id, const char* variable) {
  // Runs of nodes: (tasks per node, nodes), parsed strictly.
  std::vector<std::pair<long, long>> runs;
  const char* p = text.c_str();
  auto number = [&](long& x) {
    if (*p < '0' || *p > '9') return false;
    errno = 0;
    char* end = nullptr;
    x = std::strtol(p, &end, 10);
    p = end;
    return errno != ERANGE && x >= 1 && x < (1L << 30);
  };
  bool ok = !text.empty();
  while (ok && *p != '\0') {
    long tasks = 0, nodes = 1;
    ok = number(tasks);
    if (ok && p[0] == '(' && p[1] == 'x') {
      p += 2;
      ok = number(nodes) && *p++ == ')';
    }
    if (ok) runs.emplace_back(tasks, nodes);
    if (ok && *p == ',') ok = *++p != '\0';
    else if (ok) ok = *p == '\0';
  }
  LOOM_CHECK(ok, variable, " must be a task count per node such as 4, 2(x3) or 2(x3),1, got '",
             text, "'");
  if (node_id < 0) {
    for (const auto& r : runs)
      LOOM_CHECK(r.first == runs[0].first, variable, "='", text,
                 "' gives nodes different task counts, and SLURM_NODEID (which node this is) is "
                 "not set");
    return static_cast<int>(runs[0].first);
  }
  long first = 0;
  for (const auto& [tasks, nodes] : runs) {
    if (node_id < first + nodes) return static_cast<int>(tasks);
    first += nodes;
  }
  LOOM_FAIL(variable, "='", text, "' lists ", first, " node(s), but SLURM_NODEID is ", node_id);
}

const char* name(Launcher l) {
  switch (l) {
    case Launcher::None: return "none";
    case Launcher::Loom: return "loom launch";
    case Launcher::Mpi: return "mpirun/srun";
    case Launcher::Torchrun: return "torchrun-style";
  }
  return "?";
}

RankEnvironment detect_environment() {
  RankEnvironment e;
  if (get("LOOM_SHM_NAME") && get("LOOM_RANK") && get("LOOM_WORLD_SIZE")) {
    e.launcher = Launcher::Loom;
    e.shm_name = get("LOOM_SHM_NAME");
    e.rank = int_var("LOOM_RANK", 0);
    e.world_size = int_var("LOOM_WORLD_SIZE", 1);
    e.local_rank = int_var("LOOM_LOCAL_RANK", e.rank);
    e.local_world_size = int_var("LOOM_LOCAL_WORLD_SIZE", e.world_size);
    e.restart_count = int_var("LOOM_RESTART_COUNT", 0);
  } else if (get("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = Launcher::Mpi;
    e.rank = int_var("OMPI_COMM_WORLD_RANK", 0);
    e.world_size = int_var("OMPI_COMM_WORLD_SIZE", 1);
    e.local_rank = int_var("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    e.local_world_size = int_var("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    // All ranks on one host are children of the same mpirun: they can also meet in shared
    // memory (backend shm under mpirun, used to compare both engines in one run).
    if (e.local_world_size == e.world_size)
      e.shm_name = "/loom-mpi-" + std::to_string(getppid());
  } else if (get("SLURM_PROCID") && get("SLURM_NTASKS")) {
    e.launcher = Launcher::Mpi;
    e.rank = int_var("SLURM_PROCID", 0);
    e.world_size = int_var("SLURM_NTASKS", 1);
    e.local_rank = int_var("SLURM_LOCALID", 0);
    const char* per_node = get("SLURM_NTASKS_PER_NODE");
    const int node = get("SLURM_NODEID") ? int_var("SLURM_NODEID", 0) : -1;
    e.local_world_size = per_node ? slurm_tasks_on_node(per_node, node, "SLURM_NTASKS_PER_NODE")
                                  : e.local_rank + 1;
  } else if (get("PMI_SIZE") || get("PMIX_RANK")) {
    e.launcher = Launcher::Mpi;
    e.rank = int_var("PMI_RANK", int_var("PMIX_RANK", 0));
    e.world_size = int_var("PMI_SIZE", 1);
    e.local_world_size = e.world_size;
    e.local_rank = e.rank;
  } else if (get("RANK") && get("WORLD_SIZE")) {
    e.launcher = Launcher::Torchrun;
    e.rank = int_var("RANK", 0);
    e.world_size = int_var("WORLD_SIZE", 1);
    e.local_rank = int_var("LOCAL_RANK", e.rank);
    e.local_world_size = int_var("LOCAL_WORLD_SIZE", e.world_size);
    e.master_addr = get("MASTER_ADDR") ? get("MASTER_ADDR") : "127.0.0.1";
    e.master_port = int_var("MASTER_PORT", 29500);
  }
  check_ranks(e, name(e.launcher));
  return e;
}

}  // namespace loom::comm
