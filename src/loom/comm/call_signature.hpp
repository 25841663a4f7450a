#pragma once
// What a rank is about to call, in debug mode (LOOM_COMM_DEBUG=1): fixed-size and trivially
// copyable, so the ranks can all-gather it before every collective and compare.
#include <cstdint>
#include <string>
#include <vector>

#include "loom/comm/types.hpp"

namespace loom::comm {

struct CallSignature {
  int64_t seq;         // the call's number on this communicator
  char kind[16];       // "allreduce", "barrier", "split", ...
  uint64_t count;
  int32_t dtype, op, root, algo;
  uint64_t group;      // hash of the members' world ranks
};

CallSignature make_signature(int64_t seq, const char* kind, const Collective& c, Algo algo,
                             const std::vector<int>& members);
// "#12 allreduce(1000 x f32, sum, root 0, ring)".
std::string describe(const CallSignature& s);
// "" when every rank's signature is the same; else what each rank called:
// "rank 0 called #12 allreduce(...); rank 1 called #12 allreduce(...)" (members: world ranks).
std::string describe_mismatch(const std::vector<CallSignature>& all, const std::vector<int>& members);

}  // namespace loom::comm
