#pragma once
// Fault injection for the parameter-server drills: LOOM_FAULT_PS_CUT_MESSAGE=<n>:<world rank>
// makes that rank die (SIGKILL) in the middle of its n-th message (1-based): a worker's n-th push
// (after the header to the first server, before its gradient) or a server's n-th answer with
// parameters (after the header, before the parameters).
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "loom/core/check.hpp"

namespace loom::ps {

struct CutMessageFault {
  int64_t message = -1;
  int world_rank = -1;

  static CutMessageFault from_env() {
    const char* v = std::getenv("LOOM_FAULT_PS_CUT_MESSAGE");
    if (v == nullptr) return {};
    CutMessageFault f;
    char tail = 0;
    long long message = 0;
    const bool ok = std::sscanf(v, "%lld:%d%c", &message, &f.world_rank, &tail) == 2 &&
                    message >= 1 && f.world_rank >= 0;
    LOOM_CHECK(ok, "LOOM_FAULT_PS_CUT_MESSAGE=", v, ": expected <message>:<world rank>, e.g. 5:2");
    f.message = message;
    return f;
  }
  // Counts one more message of `rank`; dies if it is the one to cut (call between the parts).
  void count(int rank) {
    if (rank == world_rank && ++sent_ == message) std::raise(SIGKILL);
  }

 private:
  int64_t sent_ = 0;
};

}  // namespace loom::ps
