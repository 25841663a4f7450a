#include "loom/comm/mpi/mpi_wait.hpp"

#include <atomic>
#include <sched.h>

namespace loom::comm::mpi {

static std::atomic<bool> g_timed_out{false};

bool a_wait_timed_out() { return g_timed_out.load(); }

void note_wait_timed_out() { g_timed_out.store(true); }

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  LOOM_FAIL(call, " failed: ", std::string(msg, len));
}

void wait_all(MPI_Request* requests, int n, Clock::time_point deadline, int peer,
              const std::string& what) {
  for (;;) {
    int done = 0;
    check(MPI_Testall(n, requests, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) return;
    const auto now = Clock::now();
    if (now >= deadline) {
      g_timed_out.store(true);
      throw PeerFailure(peer, what + " timed out (a rank is not answering)");
    }
    // Non-blocking MPI collectives progress only inside MPI_Test, so keep testing (as MPI's own
    // blocking calls do), but give the core away to any other runnable process in between.
    sched_yield();
  }
}

}  // namespace loom::comm::mpi
