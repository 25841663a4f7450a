#pragma once
// Who started this process, and which rank it is. Checked in this order:
//   loom launch  LOOM_RANK, LOOM_WORLD_SIZE, LOOM_LOCAL_RANK, LOOM_SHM_NAME, LOOM_RESTART_COUNT
//   mpirun       OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK / _LOCAL_SIZE
//   srun / PMI   SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE (with
//                SLURM_NODEID); PMI_RANK, PMI_SIZE; PMIX_RANK
//   torchrun     RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//   none         a single rank
#include <string>

namespace loom::comm {

enum class Launcher { None, Loom, Mpi, Torchrun };

struct RankEnvironment {
  Launcher launcher = Launcher::None;
  int rank = 0, world_size = 1;
  int local_rank = 0, local_world_size = 1;
  std::string shm_name;  // the job's shared-memory segment (loom launch; mpirun on one host)
  int restart_count = 0;  // loom launch --max_restarts: how many times the job was restarted
  std::string master_addr;
  int master_port = 0;
};

RankEnvironment detect_environment();
const char* name(Launcher l);

// An integer environment variable in [0, max], or `fallback` when unset; text, trailing junk or
// a value out of range is an error naming the variable (never a silent truncation).
long integer_env(const char* name, long fallback, long max);

// The tasks on node `node_id` from a Slurm task count per node (SLURM_NTASKS_PER_NODE,
// SLURM_TASKS_PER_NODE): "4", or counts for runs of nodes in node order, "2(x3),1" = nodes 0-2
// have 2 tasks, node 3 has 1. `node_id` < 0 (unknown) is accepted only when every node has the
// same count. Malformed text or a node outside the list is an error naming `variable`.
int slurm_tasks_on_node(const std::string& text, int node_id, const char* variable);

}  // namespace loom::comm
