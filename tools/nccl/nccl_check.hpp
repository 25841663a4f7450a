#pragma once
// `loom nccl check`: the NCCL backend against the host backend it was bootstrapped from. Each
// collective runs twice on the same inputs, on device buffers through NCCL and on host buffers
// through the host world (ring algorithm), and the results are compared element by element
// (integer inputs: sums are exact in f32 and bf16; averages within one rounding, since NCCL
// scales before summing).
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"

namespace loom::comm::nccl {

struct NcclCheckResult {
  int cases = 0;
  std::vector<std::string> failures;  // one line per mismatching case
};

// Collective over `host`. `stall_rank` (>= 0) makes that rank skip the collectives after joining
// NCCL, so the others must fail by the timeout (the failure test).
NcclCheckResult run_nccl_check(Communicator& host, int device, int stall_rank = -1);

}  // namespace loom::comm::nccl
