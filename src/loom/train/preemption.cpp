#include "loom/train/preemption.hpp"

#include <signal.h>

namespace loom {
namespace {

volatile sig_atomic_t g_signal = 0;

// The first signal is remembered; both are then left to their default action (terminate), so a
// second SIGTERM or SIGINT ends the process at once. sigaction is async-signal-safe.
void on_signal(int sig) {
  g_signal = sig;
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGTERM, &dfl, nullptr);
  sigaction(SIGINT, &dfl, nullptr);
}

struct sigaction g_old_term {}, g_old_int {};

}  // namespace

PreemptionWatch::PreemptionWatch() {
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, &g_old_term);
  sigaction(SIGINT, &sa, &g_old_int);
}

PreemptionWatch::~PreemptionWatch() {
  sigaction(SIGTERM, &g_old_term, nullptr);
  sigaction(SIGINT, &g_old_int, nullptr);
}

int PreemptionWatch::signal() const { return g_signal; }

}  // namespace loom
