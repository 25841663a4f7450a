#include "loom/launch/launcher.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>

#include "loom/comm/transport.hpp"
#include "loom/core/check.hpp"
#include "loom/core/log.hpp"
#include "loom/launch/rank_process.hpp"

namespace loom::launch {
namespace {

using Clock = std::chrono::steady_clock;

// SIGINT/SIGTERM received by the launcher: the first one's number, and how many arrived.
volatile sig_atomic_t g_interrupt = 0, g_signals = 0;
void on_signal(int sig) {
  if (g_signals == 0) g_interrupt = sig;
  g_signals = g_signals + 1;
}

// Installs the launcher's SIGINT/SIGTERM handlers for its lifetime (the ranks are stopped
// cleanly instead of being orphaned), restoring the previous ones after.
class SignalGuard {
 public:
  SignalGuard() {
    g_interrupt = 0;
    g_signals = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

struct Outcome {
  int exit_code = 0;  // 0: every rank succeeded
  bool interrupted = false;
  int lost = 0;  // ranks that could not join the job (comm::kRankStartFailureExitCode)
};

std::string segment_name(int attempt) {
  std::random_device rd;
  return "/loom-" + std::to_string(getpid()) + "-" + std::to_string(attempt) + "-" +
         std::to_string(rd() % 1000000);
}

class Job {
 public:
  Job(int nproc, const std::vector<std::string>& args, const LaunchOptions& opts, int attempt)
      : shm_name_(segment_name(attempt)), grace_(opts.grace_s), expendable_from_(opts.expendable_from) {
    for (int r = 0; r < nproc; ++r) {
      const std::map<std::string, std::string> env{
          {"LOOM_RANK", std::to_string(r)},
          {"LOOM_WORLD_SIZE", std::to_string(nproc)},
          {"LOOM_LOCAL_RANK", std::to_string(r)},
          {"LOOM_LOCAL_WORLD_SIZE", std::to_string(nproc)},
          {"LOOM_SHM_NAME", shm_name_},
          {"LOOM_RESTART_COUNT", std::to_string(attempt)}};
      try {
        ranks_.push_back(spawn_rank(r, opts.program, args, env));
      } catch (...) {
        stop_all(SIGKILL);
        finish();
        throw;
      }
    }
  }
  ~Job() { finish(); }

  Outcome run() {
    Outcome outcome;
    Clock::time_point kill_at = Clock::time_point::max();
    int forwarded = 0;  // the interrupting signal passed on to the ranks
    bool second_signal = false;
    while (busy()) {
      pump_output(50);
      reap();
      if (g_interrupt && !outcome.interrupted) {
        // Preemption (Slurm's SIGTERM, Ctrl-C): every rank gets the signal once, agrees with the
        // others on a step, checkpoints and exits 0; the launcher waits for that.
        outcome.interrupted = true;
        forwarded = g_interrupt;
        log("loom launch: signal ", forwarded, " received: passing it to the ranks (they save and "
            "stop at the next step; a second signal stops them at once)");
        signal_all(forwarded);
      }
      if (g_signals > 1 && !second_signal) {
        second_signal = true;
        log("loom launch: second signal: stopping the ranks now");
        kill_at = Clock::now();
      }
      if (first_failure_ >= 0 && outcome.exit_code == 0) {
        const RankProcess& p = ranks_[first_failure_];
        outcome.exit_code = exit_code_of(p.status);
        log("loom launch: rank ", p.rank, " (pid ", p.pid, ") ", describe_status(p.status),
            "; stopping the other ranks");
        stop_all(SIGTERM);
        kill_at = std::min(kill_at, Clock::now() + grace());
      }
      if (stopping_) kill_stopped_ranks();
      stop_orphaned_expendable_ranks();
      if (Clock::now() >= kill_at) {
        stop_all(SIGKILL);
        kill_at = Clock::time_point::max();
        if (outcome.interrupted && outcome.exit_code == 0) outcome.exit_code = 128 + forwarded;
      }
    }
    for (const auto& p : ranks_)
      outcome.lost += WIFEXITED(p.status) && WEXITSTATUS(p.status) == comm::kRankStartFailureExitCode;
    return outcome;
  }

 private:
  Clock::duration grace() const {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(grace_));
  }

  // Running ranks, or pipes still open. A pipe held open by a rank's own child after the rank
  // ended is not waited for beyond a short drain.
  bool busy() {
    bool running = false, pipes = false;
    for (const auto& p : ranks_) {
      running |= p.running;
      pipes |= p.out_fd >= 0 || p.err_fd >= 0;
    }
    if (running) return true;
    if (!pipes) return false;
    if (drain_until_ == Clock::time_point::max())
      drain_until_ = Clock::now() + std::chrono::seconds(2);
    if (Clock::now() < drain_until_) return true;
    close_pipes();
    return false;
  }

  void pump_output(int timeout_ms) {
    std::vector<pollfd> fds;
    std::vector<std::pair<size_t, bool>> who;  // (rank index, is stderr)
    for (size_t i = 0; i < ranks_.size(); ++i) {
      if (ranks_[i].out_fd >= 0) {
        fds.push_back({ranks_[i].out_fd, POLLIN, 0});
        who.emplace_back(i, false);
      }
      if (ranks_[i].err_fd >= 0) {
        fds.push_back({ranks_[i].err_fd, POLLIN, 0});
        who.emplace_back(i, true);
      }
    }
    if (fds.empty()) {
      usleep(static_cast<useconds_t>(timeout_ms) * 1000);
      return;
    }
    if (poll(fds.data(), fds.size(), timeout_ms) <= 0) return;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      RankProcess& p = ranks_[who[k].first];
      if (who[k].second)
        forward_output(p, p.err_fd, p.err_partial, STDERR_FILENO);
      else
        forward_output(p, p.out_fd, p.out_partial, STDOUT_FILENO);
    }
  }

  // The rank to name as the job's failure. A rank that died makes the others fail with
  // kPeerFailureExitCode moments later, and on a loaded machine the launcher may see them end
  // first (or in the same pass): a failure of another kind is preferred, and only when none
  // comes within kSettle is a peer failure named (every rank timing out on a hung one).
  void reap() {
    const auto now = Clock::now();
    for (size_t i = 0; i < ranks_.size(); ++i) {
      RankProcess& p = ranks_[i];
      if (!p.running) continue;
      int status = 0;
      if (waitpid(p.pid, &status, WNOHANG) != p.pid) continue;
      p.running = false;
      p.status = status;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (ok || stopping_) continue;
      if (expendable_from_ >= 0 && p.rank >= expendable_from_) {
        log("loom launch: rank ", p.rank, " (pid ", p.pid, ") ", describe_status(status),
            "; the job goes on without it");
        continue;
      }
      if (failed_.empty()) first_failed_at_ = now;
      failed_.push_back(i);
    }
    if (first_failure_ >= 0 || failed_.empty()) return;
    for (size_t i : failed_) {
      const int status = ranks_[i].status;
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == comm::kPeerFailureExitCode)) {
        first_failure_ = static_cast<int>(i);
        return;
      }
    }
    const bool any_running =
        std::any_of(ranks_.begin(), ranks_.end(), [](const RankProcess& p) { return p.running; });
    if (!any_running || now - first_failed_at_ >= kSettle)
      first_failure_ = static_cast<int>(failed_.front());
  }
  static constexpr Clock::duration kSettle = std::chrono::seconds(1);

  void signal_all(int sig) {
    for (const auto& p : ranks_)
      if (p.running) kill(p.pid, sig);
  }

  void stop_all(int sig) {
    stopping_ = true;
    for (const auto& p : ranks_)
      if (p.running) kill(p.pid, sig);
    if (sig == SIGKILL)  // a stopped (SIGSTOP) rank only dies of SIGKILL; SIGCONT is harmless
      for (const auto& p : ranks_)
        if (p.running) kill(p.pid, SIGCONT);
  }

  // Once every other rank has ended well, an expendable rank still running (a worker the
  // parameter servers dropped as hung) has nothing left to do: after kSettle it is named and
  // killed, and the job keeps its result.
  void stop_orphaned_expendable_ranks() {
    if (expendable_from_ < 0 || stopping_ || first_failure_ >= 0) return;
    bool orphans = false;
    for (const auto& p : ranks_) {
      if (p.rank < expendable_from_ && p.running) return;
      orphans |= p.running;
    }
    if (!orphans) return;
    const auto now = Clock::now();
    if (orphaned_since_ == Clock::time_point::max()) orphaned_since_ = now;
    if (now - orphaned_since_ < kSettle) return;
    for (const auto& p : ranks_)
      if (p.running)
        log("loom launch: rank ", p.rank, " (pid ", p.pid,
            ") is still running after the ranks it served ended; stopping it");
    stop_all(SIGKILL);
  }

  // A rank stopped by SIGSTOP (state T) cannot act on SIGTERM: no need to wait the grace for it.
  void kill_stopped_ranks() {
    for (const auto& p : ranks_) {
      if (!p.running) continue;
      std::ifstream stat("/proc/" + std::to_string(p.pid) + "/stat");
      std::string line;
      std::getline(stat, line);  // "pid (comm) state ...", comm may hold spaces
      const size_t paren = line.rfind(')');
      if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'T') {
        kill(p.pid, SIGKILL);
        kill(p.pid, SIGCONT);
      }
    }
  }

  void close_pipes() {
    for (auto& p : ranks_) {
      if (p.out_fd >= 0) close(p.out_fd);
      if (p.err_fd >= 0) close(p.err_fd);
      p.out_fd = p.err_fd = -1;
    }
  }

  // Every path ends here: no rank left running, no pipe open, no segment left in /dev/shm.
  void finish() {
    stop_all(SIGKILL);
    for (auto& p : ranks_)
      if (p.running) {
        waitpid(p.pid, &p.status, 0);
        p.running = false;
      }
    close_pipes();
    shm_unlink(shm_name_.c_str());  // normally already removed by rank 0
  }

  std::string shm_name_;
  double grace_;
  int expendable_from_;
  std::vector<RankProcess> ranks_;
  int first_failure_ = -1;
  std::vector<size_t> failed_;  // ranks that ended badly, in the order seen
  Clock::time_point first_failed_at_;
  Clock::time_point orphaned_since_ = Clock::time_point::max();
  bool stopping_ = false;
  Clock::time_point drain_until_ = Clock::time_point::max();
};

// The world of the next attempt of an elastic job after `lost` of `world` ranks could not
// start: the largest the job accepts, no fewer than min_nproc; nullopt (logged) when none is.
std::optional<std::pair<int, ElasticCommand>> shrink(const Elastic& e, int world, int lost) {
  const int left = world - lost;
  for (int n = left; n >= e.min_nproc && n >= 1; --n) {
    std::string why;
    if (auto command = e.command_for(n, &why)) return std::make_pair(n, std::move(*command));
    log("loom launch: elastic: not ", n, " ranks: ", why);
  }
  log("loom launch: elastic: ", lost, " of ", world, " ranks could not start and no world of ",
      e.min_nproc, " to ", left, " ranks can run the job (--nproc ", e.min_nproc, ":...); giving up");
  return std::nullopt;
}

}  // namespace

int launch_local(int nproc, const std::vector<std::string>& args, const LaunchOptions& opts) {
  LOOM_CHECK(nproc >= 1, "launch: --nproc must be at least 1, got ", nproc);
  LOOM_CHECK(opts.max_restarts >= 0, "launch: --max_restarts must be >= 0");
  LOOM_CHECK(!args.empty(), "launch: no command to run (loom launch --nproc N -- <command>)");
  LOOM_CHECK(!opts.elastic || (opts.elastic->min_nproc >= 1 && opts.elastic->min_nproc <= nproc),
             "launch: --nproc ", opts.elastic ? opts.elastic->min_nproc : 0, ":", nproc,
             ": MIN must be between 1 and MAX");
  SignalGuard signals;
  int world = nproc;
  std::vector<std::string> command = args;
  for (int attempt = 0;; ++attempt) {
    Outcome outcome;
    {
      Job job(world, command, opts, attempt);
      outcome = job.run();
    }
    // A preempted job whose ranks all saved and exited 0 succeeded; it is not restarted either way.
    if (outcome.exit_code == 0 || outcome.interrupted) return outcome.exit_code;
    if (attempt >= opts.max_restarts) {
      if (opts.max_restarts > 0)
        log("loom launch: giving up after ", opts.max_restarts, " restart(s)");
      return outcome.exit_code;
    }
    if (opts.elastic && outcome.lost > 0) {
      const auto next = shrink(*opts.elastic, world, outcome.lost);
      if (!next) return outcome.exit_code;
      log("loom launch: elastic: ", outcome.lost, " rank(s) could not start; restarting on ",
          next->first, " of ", nproc, " ranks", next->second.note.empty() ? "" : " (",
          next->second.note, next->second.note.empty() ? "" : ")", " (restart ", attempt + 1,
          " of ", opts.max_restarts, ")");
      world = next->first;
      command = next->second.args;
      continue;
    }
    log("loom launch: restarting all ", world, " ranks (restart ", attempt + 1, " of ",
        opts.max_restarts, ")");
  }
}

}  // namespace loom::launch
