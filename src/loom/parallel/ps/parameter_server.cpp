#include "loom/parallel/ps/parameter_server.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

#include "loom/core/check.hpp"
#include "loom/optim/grad_clip.hpp"

namespace loom::ps {

ParameterServer::ParameterServer(comm::Communicator& world, int servers,
                                 const std::vector<ParamInfo>& layout, const ServerConfig& config,
                                 ServerEvents* events)
    : world_(world),
      servers_(servers),
      workers_(world.size() - servers),
      index_(world.rank()),
      ranges_(server_ranges(layout.back().offset + layout.back().numel, servers)),
      cfg_(config),
      events_(events),
      local_layout_(range_layout(layout, ranges_.at(world.rank()))),
      adamw_(local_layout_, config.adamw),
      end_step_(config.max_steps),
      clocks_(world.size() - servers),
      waiting_(workers_, false),
      dropped_(workers_, false),
      pids_(workers_, 0),
      owes_since_(workers_),
      pulled_version_(workers_, 0),
      pulled_min_clock_(workers_, 0),
      last_push_(workers_),
      final_received_(servers, false) {
  LOOM_CHECK(index_ < servers_ && workers_ >= 1, "ps: rank ", index_, " of ", world.size(),
             " is not one of the ", servers_, " servers of a job with workers");
  range_ = ranges_[index_];
  params_.resize(range_.size());
  grad_.resize(range_.size());
}

void ParameterServer::set_step(int64_t step) {
  step_ = step;
  adamw_.set_step_count(step);
}

void ParameterServer::set_data_start(const std::vector<PushHeader>& workers) {
  LOOM_CHECK(static_cast<int>(workers.size()) == workers_, "ps: ", workers.size(),
             " data positions for ", workers_, " workers");
  last_push_ = workers;
}

bool ParameterServer::save_point() const {
  return cfg_.save_freq > 0 && step_ % cfg_.save_freq == 0 && step_ < end_step_;
}

bool ParameterServer::send_params(int w) {
  const ReplyHeader h{ReplyStatus::kContinue, 0, step_};
  const bool header_sent = world_.send_unless_gone(&h, sizeof h, worker_rank(w));
  cut_.count(world_.rank());  // the drill: dies with the header sent
  if (!header_sent ||
      !world_.send_unless_gone(params_.data(), params_.size() * sizeof(float), worker_rank(w))) {
    LOOM_CHECK(cfg_.mode != Mode::kSync, "ps sync: worker rank ", worker_rank(w), " is gone");
    retire(w, "is gone");
    return false;
  }
  pulled_version_[w] = step_;
  pulled_min_clock_[w] = clocks_.min_active_pushed();
  owes_since_[w] = comm::Clock::now();
  return true;
}

void ParameterServer::send_stop(int w) {
  const ReplyHeader h{ReplyStatus::kStop, 0, step_};
  world_.send_unless_gone(&h, sizeof h, worker_rank(w));  // one gone now has nothing to stop
}

void ParameterServer::retire(int w, const std::string& lost) {
  clocks_.retire(w);
  waiting_[w] = false;
  if (lost.empty()) return;
  dropped_[w] = true;
  if (events_ != nullptr) events_->worker_lost(worker_rank(w), step_, lost);
}

comm::Clock::time_point ParameterServer::hang_deadline() const {
  const auto timeout = std::chrono::duration_cast<comm::Clock::duration>(
      std::chrono::duration<double>(world_.timeout_s()));
  auto first = comm::Clock::time_point::max();
  for (int w = 0; w < workers_; ++w)
    if (clocks_.active(w) && !waiting_[w]) first = std::min(first, owes_since_[w] + timeout);
  return first;
}

void ParameterServer::drop_hung_workers() {
  const auto timeout = std::chrono::duration<double>(world_.timeout_s());
  const auto now = comm::Clock::now();
  for (int w = 0; w < workers_; ++w)
    if (clocks_.active(w) && !waiting_[w] && now - owes_since_[w] >= timeout)
      retire(w, detail::concat("stopped answering (no push for ", world_.timeout_s(),
                               " s, the comm timeout)"));
}

void ParameterServer::release_waiting() {
  for (int w = 0; w < workers_; ++w) {
    if (!waiting_[w]) continue;
    if (step_ >= end_step_) {
      send_stop(w);
      retire(w);
    } else if (clocks_.may_begin(w, cfg_.staleness)) {
      waiting_[w] = false;
      send_params(w);
    }
  }
}

void ParameterServer::apply_one(int w, const PushHeader& h) {
  float clip = 1.0f;
  if (cfg_.max_norm > 0 && clips_at(step_, cfg_.warmup_steps, cfg_.clip_during_warmup))
    clip = clip_scale(h.grad_norm, cfg_.max_norm);
  // A push is 1/W of a sync update's batch. AdamW normalises the gradient (a scale on it
  // cancels in m / sqrt(v): the "scaled by 1/workers" on the gradient made every push a
  // whole sync-sized step), so the scale goes on the step, by Adam's square-root rule for a batch
  // W times smaller (Malladi et al., NeurIPS 2022): lr / sqrt(W), which weight decay follows.
  const float lr = cfg_.schedule.at(step_) / std::sqrt(static_cast<float>(workers_));
  adamw_.step(params_.data(), grad_.data(), lr, clip);
  update_staleness_.add(step_ - pulled_version_[w]);
  clock_staleness_.add(clocks_.pushed(w) - pulled_min_clock_[w]);
  ++step_;
  if (events_ != nullptr)
    events_->updated({step_, h.loss, lr, h.grad_norm, clip != 1.0f, 1, worker_rank(w)});
  if (save_point()) snapshot(SnapshotKind::kPeriodic);
}

std::vector<double> ParameterServer::worker_wait_shares() const {
  std::vector<double> shares;
  for (const PushHeader& h : last_push_)
    shares.push_back(h.elapsed_s > 0 ? h.waited_s / h.elapsed_s : 0.0);
  return shares;
}

std::vector<ParameterServer::DroppedWorker> ParameterServer::dropped_workers() const {
  std::vector<DroppedWorker> dropped;
  for (int w = 0; w < workers_; ++w)
    if (dropped_[w]) dropped.push_back({worker_rank(w), pids_[w]});
  return dropped;
}

void ParameterServer::run() {
  const Timer whole;
  if (cfg_.mode == Mode::kSync)
    run_sync();
  else
    run_async();
  run_s_ = whole.seconds();
  snapshot(SnapshotKind::kFinal);
}

void ParameterServer::run_sync() {
  for (int w = 0; w < workers_; ++w) send_params(w);
  sum_.resize(range_.size());
  const size_t n = range_.size();
  while (step_ < end_step_) {
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    double loss = 0;
    bool stop = cfg_.stop_requested();
    for (int w = 0; w < workers_; ++w) {  // in worker order: the sum is reproducible
      PushHeader h;
      const Timer wait;
      world_.recv(&h, sizeof h, worker_rank(w));
      idle_s_ += wait.seconds();
      LOOM_CHECK(h.kind == PushKind::kPush, "ps sync: worker rank ", worker_rank(w),
                 " stopped before step ", step_ + 1);
      world_.recv(grad_.data(), n * sizeof(float), worker_rank(w));
      for (size_t i = 0; i < n; ++i) sum_[i] += grad_[i];
      loss += h.loss;
      stop |= h.signal != 0;
      last_push_[w] = h;
      clocks_.record_push(w);
      update_staleness_.add(0);
      clock_staleness_.add(0);
    }
    const float inv = 1.0f / static_cast<float>(workers_);
    for (size_t i = 0; i < n; ++i) sum_[i] *= inv;
    // The global norm of the averaged gradient: every server sums the same partials in order.
    // With them each server says whether it was asked to stop: all stop after this update.
    std::vector<std::array<double, 2>> partial(servers_, {0.0, 0.0});
    partial[index_] = {grad_sq_sum(sum_.data(), n), stop ? 1.0 : 0.0};
    for (int s = 0; s < servers_; ++s)
      if (s != index_) world_.send(partial[index_].data(), sizeof partial[index_], s);
    for (int s = 0; s < servers_; ++s)
      if (s != index_) world_.recv(partial[s].data(), sizeof partial[s], s);
    double sq = 0;
    for (const auto& [p, stops] : partial) {
      sq += p;
      stop |= stops != 0;
    }
    const double norm = std::sqrt(sq);
    LOOM_CHECK(std::isfinite(norm) && std::isfinite(loss), "the loss is ", loss / workers_,
               " and the gradient norm ", norm, " at step ", step_ + 1,
               ": training diverged (try a lower lr)");
    float clip = 1.0f;
    if (cfg_.max_norm > 0 && clips_at(step_, cfg_.warmup_steps, cfg_.clip_during_warmup))
      clip = clip_scale(norm, cfg_.max_norm);
    const float lr = cfg_.schedule.at(step_);
    adamw_.step(params_.data(), sum_.data(), lr, clip);
    ++step_;
    if (stop && step_ < end_step_) {
      end_step_ = step_;
      preempted_ = true;
    }
    if (events_ != nullptr)
      events_->updated({step_, loss / workers_, lr, norm, clip != 1.0f, workers_, -1});
    if (save_point()) snapshot(SnapshotKind::kPeriodic);
    for (int w = 0; w < workers_; ++w) {
      if (step_ < end_step_)
        send_params(w);
      else
        send_stop(w);
    }
  }
  for (int w = 0; w < workers_; ++w) clocks_.retire(w);
}

void ParameterServer::run_async() {
  for (int w = 0; w < workers_; ++w) send_params(w);
  const size_t n = range_.size();
  size_t turn = 0;
  std::vector<int> peers;
  while (clocks_.active_count() > 0) {
    // Every active worker, and (server 0) the other servers' snapshots, starting one further
    // each time: no peer waits behind a busy one.
    peers.clear();
    for (int w = 0; w < workers_; ++w)
      if (clocks_.active(w)) peers.push_back(worker_rank(w));
    if (index_ == 0)
      for (int s = 1; s < servers_; ++s) peers.push_back(s);
    std::rotate(peers.begin(), peers.begin() + (turn++ % peers.size()), peers.end());
    const Timer wait;
    const comm::Communicator::Arrival a = world_.wait_any(peers, hang_deadline());
    idle_s_ += wait.seconds();
    if (a.peer < 0) {  // nothing before the first owed push was due
      drop_hung_workers();
      release_waiting();
      continue;
    }
    if (a.peer < servers_) {
      LOOM_CHECK(!a.gone, "ps: server rank ", a.peer, " is gone");
      receive_snapshot(a.peer);
      continue;
    }
    const int w = a.peer - servers_;
    PushHeader h;
    if (a.gone || !world_.recv_unless_gone(&h, sizeof h, a.peer)) {
      retire(w, "is gone");
      release_waiting();
      continue;
    }
    if (h.pid > 0) pids_[w] = h.pid;
    if (h.kind == PushKind::kBye) {
      retire(w);
      release_waiting();
      continue;
    }
    if (!world_.recv_unless_gone(grad_.data(), n * sizeof(float), a.peer)) {
      retire(w, "is gone in the middle of its push (the part received is discarded)");
      release_waiting();
      continue;
    }
    if (stop_asked(h) && step_ < end_step_) {  // this push is the last one applied
      end_step_ = step_ + 1;
      preempted_ = true;
    }
    if (step_ < end_step_) {
      last_push_[w] = h;  // the worker's data position once this batch is applied
      apply_one(w, h);
    }
    clocks_.record_push(w);
    if (step_ >= end_step_) {
      send_stop(w);
      retire(w);
    } else if (cfg_.mode == Mode::kSsp && !clocks_.may_begin(w, cfg_.staleness)) {
      waiting_[w] = true;
    } else {
      send_params(w);
    }
    release_waiting();
  }
}

void ParameterServer::snapshot(SnapshotKind kind) {
  if (index_ != 0) {
    const SnapshotHeader h{kind, 0, step_};
    const size_t bytes = range_.size() * sizeof(float);
    world_.send(&h, sizeof h, 0);
    world_.send(params_.data(), bytes, 0);
    world_.send(adamw_.m(), bytes, 0);
    world_.send(adamw_.v(), bytes, 0);
    return;
  }
  add_part(0, kind, step_, params_.data(), adamw_.m(), adamw_.v());
  if (cfg_.mode == Mode::kSync) {
    // Every server is at this step too and sends its part now, in server order.
    for (int s = 1; s < servers_; ++s) receive_snapshot(s);
    return;
  }
  if (kind != SnapshotKind::kFinal) return;  // the others' parts arrive with the workers' pushes
  std::vector<int> missing;
  for (;;) {
    missing.clear();
    for (int s = 1; s < servers_; ++s)
      if (!final_received_[s]) missing.push_back(s);
    if (missing.empty()) break;
    const comm::Communicator::Arrival a = world_.wait_any(missing);
    LOOM_CHECK(!a.gone, "ps: server rank ", a.peer, " is gone");
    receive_snapshot(a.peer);
  }
}

void ParameterServer::receive_snapshot(int s) {
  SnapshotHeader h;
  world_.recv(&h, sizeof h, s);
  const size_t n = ranges_[s].size(), bytes = n * sizeof(float);
  std::vector<float> p(n), m(n), v(n);
  world_.recv(p.data(), bytes, s);
  world_.recv(m.data(), bytes, s);
  world_.recv(v.data(), bytes, s);
  add_part(s, h.kind, h.step, p.data(), m.data(), v.data());
}

void ParameterServer::add_part(int s, SnapshotKind kind, int64_t step, const float* params,
                               const float* m, const float* v) {
  const bool final = kind == SnapshotKind::kFinal;
  Assembly& a = final ? final_ : assembling_[step];
  if (a.snap.params.empty()) {
    const size_t total = ranges_.back().end;
    a.snap.params.resize(total);
    a.snap.m.resize(total);
    a.snap.v.resize(total);
  }
  if (s == 0) a.snap.workers = last_push_;  // where the data stands at server 0's step
  const ParamRange r = ranges_[s];
  std::copy(params, params + r.size(), a.snap.params.begin() + r.begin);
  std::copy(m, m + r.size(), a.snap.m.begin() + r.begin);
  std::copy(v, v + r.size(), a.snap.v.begin() + r.begin);
  if (final) final_received_[s] = true;
  if (++a.parts < servers_) return;
  a.snap.step = final ? step_ : step;
  a.snap.data = resume_point(a.snap.workers);
  a.snap.preempted = final && preempted_;
  events_->checkpoint(a.snap, final);
  if (final) {
    assembling_.clear();  // a periodic snapshot some server never reached
  } else {
    assembling_.erase(step);
  }
}

PushHeader ParameterServer::resume_point(const std::vector<PushHeader>& workers) const {
  if (cfg_.mode == Mode::kSync) return workers[0];
  // The worker furthest behind: no batch of an active worker is skipped on resume.
  const PushHeader* best = &workers[0];
  for (const PushHeader& h : workers)
    if (h.data_epoch < best->data_epoch ||
        (h.data_epoch == best->data_epoch && h.data_samples < best->data_samples))
      best = &h;
  return *best;
}

}  // namespace loom::ps
