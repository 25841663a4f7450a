#pragma once
// What a communication engine (shm, mpi, solo) gives the Communicator: a Transport for our
// algorithms, optionally its own native collectives, and sub-groups.
#include <memory>
#include <vector>

#include "loom/comm/transport.hpp"
#include "loom/comm/types.hpp"

namespace loom::comm {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual Transport& transport() = 0;
  // World ranks of the group's members, in group-rank order.
  virtual const std::vector<int>& members() const = 0;

  // Algo::Native. Backends without native collectives keep these defaults, which refuse.
  virtual bool has_native() const { return false; }
  virtual void native(const Collective& c, Clock::time_point deadline);
  virtual void native_barrier(Clock::time_point deadline);

  // The sub-group this rank belongs to. Every member of this group calls split() in the same
  // order; `color`/`key` are this rank's (as in MPI_Comm_split), `members` are the group ranks
  // (in this group) of the new group in its rank order, and `context` an id the Communicator
  // made unique among all groups sharing a rank with the new one.
  virtual std::unique_ptr<Backend> split(int color, int key, const std::vector<int>& members,
                                         int context) = 0;
};

// The backend of a process that was not launched as part of a job: one rank, no peers.
std::unique_ptr<Backend> make_solo_backend();

}  // namespace loom::comm
