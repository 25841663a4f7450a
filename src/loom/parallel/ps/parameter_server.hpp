#pragma once
// One parameter server: its range of the flat parameter buffer (server_ranges.hpp) with the
// AdamW moments of that range, and the loop that answers the workers (ps_protocol.hpp) until
// training ends. The optimizer runs here: the learning rate follows the server's update count,
// clipping uses the global norm (sync: of the averaged gradient, the servers summing their
// ranges' squares; async/ssp: each pushed gradient's, computed by its worker). A step is one
// update: in sync mode it consumes every worker's batch, in async and ssp one worker's.
// Server 0 also reports each update and assembles checkpoints from every server's range
// (ServerEvents). Every wait is bounded by the communicator's timeout. In async and ssp a worker
// is dropped (and named) and training goes on with the others when it is found gone (between
// messages, or in the middle of its push, which is then discarded) or when it owes a push for
// longer than the timeout (hung: alive but silent); the ssp gate then waits for the live ones.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/timer.hpp"
#include "loom/optim/adamw.hpp"
#include "loom/optim/lr_schedule.hpp"
#include "loom/parallel/ps/cut_message_fault.hpp"
#include "loom/parallel/ps/ps_mode.hpp"
#include "loom/parallel/ps/ps_protocol.hpp"
#include "loom/parallel/ps/server_ranges.hpp"
#include "loom/parallel/ps/staleness.hpp"

namespace loom::ps {

struct ServerConfig {
  Mode mode = Mode::kSync;
  int64_t staleness = 0;  // ssp
  int64_t max_steps = 0;  // server updates
  int64_t save_freq = 0;  // a checkpoint every this many updates (0: only the final one)
  LrSchedule schedule;
  float max_norm = 0;
  int64_t warmup_steps = 0;
  bool clip_during_warmup = false;
  AdamWParams adamw;
  // Preemption (SIGTERM) seen on this rank. The servers then stop after the update in progress
  // (sync: all at the same one) and save it as the final checkpoint; a push whose worker saw
  // the signal counts too.
  std::function<bool()> stop_requested = [] { return false; };
};

struct UpdateReport {
  int64_t step = 0;     // updates done, this one included
  double loss = 0;      // of the batches applied (sync: the workers' mean)
  float lr = 0;
  double grad_norm = 0;  // before clipping
  bool clipped = false;
  int batches = 0;       // worker batches in this update: workers (sync) or 1
  int worker = -1;       // async/ssp: the pushing worker's world rank
};

// The whole model at one update, assembled on server 0 from every server's range.
struct Snapshot {
  int64_t step = 0;
  std::vector<float> params, m, v;  // whole flat buffers
  // Each worker's data position and dropout stream after its last batch applied (by server 0,
  // when it reached this step), and the one a single position resumes with (data-parallel
  // layouts; sync: worker 0's, async/ssp: the furthest behind, so no batch is skipped).
  std::vector<PushHeader> workers;
  PushHeader data;
  bool preempted = false;  // the final snapshot of a run stopped by a signal
};

// What server 0 reports (the train level prints, logs and saves).
class ServerEvents {
 public:
  virtual ~ServerEvents() = default;
  virtual void updated(const UpdateReport& r) = 0;
  // why: what became of it ("is gone", "stopped answering ...").
  virtual void worker_lost(int world_rank, int64_t step, const std::string& why) = 0;
  // final: the end of training (its step is server 0's update count).
  virtual void checkpoint(const Snapshot& s, bool final) = 0;
};

class ParameterServer {
 public:
  // world: ranks 0..servers-1 are the servers (this rank one of them), the rest workers.
  // events: server 0's (nullptr on the others).
  ParameterServer(comm::Communicator& world, int servers, const std::vector<ParamInfo>& layout,
                  const ServerConfig& config, ServerEvents* events);

  ParamRange range() const { return range_; }
  // The range's state, for initialising or resuming it before run().
  float* params() { return params_.data(); }
  AdamW& optimizer() { return adamw_; }
  void set_step(int64_t step);
  int64_t step() const { return step_; }
  // Where each worker's data stands before run() (a resumed run's positions), until it pushes.
  void set_data_start(const std::vector<PushHeader>& workers);

  // Serves the workers until training ends (max_steps updates, or no worker left), then sends
  // its final state to server 0, which reports the final checkpoint.
  void run();

  // The share of run()'s time this server was not waiting for a worker's push (bench ps).
  double busy_share() const { return run_s_ > 0 ? 1.0 - idle_s_ / run_s_ : 0.0; }
  // Per worker, the share of its time it waited for the servers' replies (pulls, the ssp gate),
  // as its last push applied here reported it (bench ps); 0 for one that pushed nothing.
  std::vector<double> worker_wait_shares() const;
  // The workers dropped (gone, or silent: they may still be running), with the process id their
  // pushes gave (0: none came).
  struct DroppedWorker {
    int world_rank;
    int64_t pid;
  };
  std::vector<DroppedWorker> dropped_workers() const;
  const StalenessHistogram& update_staleness() const { return update_staleness_; }
  const StalenessHistogram& clock_staleness() const { return clock_staleness_; }

 private:
  int worker_rank(int w) const { return servers_ + w; }
  // False when the worker is found gone (it is then dropped).
  bool send_params(int w);
  void send_stop(int w);
  // Async/ssp: when the first worker that owes a push (it has parameters) is due to be declared
  // hung; time_point::max() when none owes one.
  comm::Clock::time_point hang_deadline() const;
  // Drops the workers that owe a push for longer than the communicator's timeout.
  void drop_hung_workers();
  // A push's payload was received into grad_: apply it (async/ssp), recording its staleness.
  void apply_one(int w, const PushHeader& h);
  // SSP: answers the workers waiting at the gate that may now begin (all of them once training
  // is over).
  void release_waiting();
  // lost: the reason to report ("" for a worker that stopped as told).
  void retire(int w, const std::string& lost = "");
  void run_sync();
  void run_async();
  // Save points: this server's part of the snapshot at step_ (periodic or final).
  void snapshot(SnapshotKind kind);
  // Server 0: a snapshot part from server s (header + 3 ranges), received now.
  void receive_snapshot(int s);
  void add_part(int s, SnapshotKind kind, int64_t step, const float* params, const float* m,
                const float* v);
  // The single data position to resume with (sync: worker 0's; async: the furthest behind).
  PushHeader resume_point(const std::vector<PushHeader>& workers) const;
  bool save_point() const;
  // Preemption asked for on this rank or by the push `h`.
  bool stop_asked(const PushHeader& h) const { return h.signal != 0 || cfg_.stop_requested(); }

  comm::Communicator& world_;
  int servers_, workers_, index_;
  ParamRange range_;
  std::vector<ParamRange> ranges_;
  ServerConfig cfg_;
  ServerEvents* events_;
  std::vector<ParamInfo> local_layout_;
  AdamW adamw_;
  std::vector<float> params_, grad_, sum_;
  int64_t step_ = 0;
  int64_t end_step_;  // max_steps, or the update at which a preemption stops training
  bool preempted_ = false;
  ClockTable clocks_;
  std::vector<bool> waiting_;              // ssp: pushed, not yet answered
  std::vector<bool> dropped_;              // lost (retired with a reason)
  std::vector<int64_t> pids_;              // each worker's process, from its pushes (0: none yet)
  std::vector<comm::Clock::time_point> owes_since_;  // when each worker was sent parameters
  std::vector<int64_t> pulled_version_;    // update count of the parameters each worker has
  std::vector<int64_t> pulled_min_clock_;  // the slowest active worker's pushes at that pull
  std::vector<PushHeader> last_push_;      // each worker's latest header
  StalenessHistogram update_staleness_, clock_staleness_;
  // Server 0: snapshots being assembled, by step (a server may be a few updates ahead).
  struct Assembly {
    Snapshot snap;
    int parts = 0;
  };
  std::map<int64_t, Assembly> assembling_;
  Assembly final_;
  std::vector<bool> final_received_;
  CutMessageFault cut_ = CutMessageFault::from_env();
  double idle_s_ = 0, run_s_ = 0;  // waiting for pushes; all of run()
};

}  // namespace loom::ps
