#include "loom/comm/mpi/mpi_wait.hpp"

#include <atomic>
#include <thread>

namespace loom::comm::mpi {

static std::atomic<bool> g_timed_out{false};

bool a_wait_timed_out() { return g_timed_out.load(); }

void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  LOOM_FAIL(call, " failed: ", std::string(msg, len));
}

void wait_all(MPI_Request* requests, int n, Clock::time_point deadline, int peer,
              const std::string& what) {
  const auto spin_until = Clock::now() + std::chrono::microseconds(50);
  for (;;) {
    int done = 0;
    check(MPI_Testall(n, requests, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) return;
    const auto now = Clock::now();
    if (now >= deadline) {
      g_timed_out.store(true);
      throw PeerFailure(peer, what + " timed out (a rank is not answering)");
    }
    if (now >= spin_until) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace loom::comm::mpi
