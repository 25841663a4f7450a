#pragma once
// `loom comm check`: runs collectives on this job's ranks and compares every element with a
// reference computed locally (inputs are small integers, so sums are exact in f32 and bf16 and
// every algorithm must match the reference bit for bit, averages included). A group running
// two-level collectives (topology.hpp) is also compared with its flat form on float inputs.
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"

namespace loom::comm {

struct CheckOptions {
  std::vector<OpKind> ops;
  std::vector<Algo> algos;
  std::vector<size_t> counts;
  bool subgroups = true;  // also check split() groups, async all-reduce, send/recv, barrier
};

struct CheckResult {
  int cases = 0;
  std::vector<std::string> failures;  // one line per mismatching case
};

// Collective over `comm`; each rank checks its own results.
CheckResult run_check(Communicator& comm, const CheckOptions& opts);

}  // namespace loom::comm
