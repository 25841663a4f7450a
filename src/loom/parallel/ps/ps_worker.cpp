#include "loom/parallel/ps/ps_worker.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "loom/core/check.hpp"

namespace loom::ps {

PsWorker::PsWorker(comm::Communicator& world, int servers, size_t num_params, bool sync)
    : world_(world), ranges_(server_ranges(num_params, servers)), sync_(sync) {
  LOOM_CHECK(world.rank() >= servers, "ps: rank ", world.rank(), " is a server, not a worker");
}

void PsWorker::await_reply(int s) {
  const auto timeout = std::chrono::duration_cast<comm::Clock::duration>(
      std::chrono::duration<double>(world_.timeout_s()));
  const auto give_up = comm::Clock::now() + 2 * timeout;
  const int from[] = {s};
  while (world_.wait_any(from, std::min(give_up, comm::Clock::now() + timeout / 2)).peer < 0)
    if (comm::Clock::now() >= give_up)
      throw comm::PeerFailure(s, detail::concat("ps: no answer from server rank ", s, " in ",
                                                2 * world_.timeout_s(),
                                                " s (twice the comm timeout)"));
}

bool PsWorker::receive_reply(int s, float* params) {
  await_reply(s);
  ReplyHeader h;
  world_.recv(&h, sizeof h, s);
  if (h.status == ReplyStatus::kStop) return false;
  LOOM_CHECK(h.status == ReplyStatus::kContinue, "ps: server rank ", s, " sent reply status ",
             static_cast<uint32_t>(h.status));
  world_.recv(params + ranges_[s].begin, ranges_[s].size() * sizeof(float), s);
  return true;
}

void PsWorker::push_to(int s, const float* grads, const PushHeader& h) {
  world_.send(&h, sizeof h, s);
  if (s == 0) cut_.count(world_.rank());  // the drill (once a push): dies with the header sent
  world_.send(grads + ranges_[s].begin, ranges_[s].size() * sizeof(float), s);
}

bool PsWorker::receive_replies(float* params) {
  const int servers = static_cast<int>(ranges_.size());
  std::vector<int> continuing;
  for (int s = 0; s < servers; ++s)
    if (receive_reply(s, params)) continuing.push_back(s);
  if (static_cast<int>(continuing.size()) == servers) return true;
  // Another server ended training first (async): those still expecting a push hear it stops.
  const PushHeader bye{PushKind::kBye};
  for (const int s : continuing) world_.send(&bye, sizeof bye, s);
  return false;
}

bool PsWorker::pull(float* params) {
  const bool go_on = receive_replies(params);
  waited_s_ = elapsed_s_ = since_start_.seconds();
  return go_on;
}

bool PsWorker::push_pull(const float* grads, const PushHeader& h, float* params) {
  LOOM_CHECK(h.kind == PushKind::kPush, "ps: a push must be PushKind::kPush");
  PushHeader timed = h;
  timed.waited_s = waited_s_;
  timed.elapsed_s = elapsed_s_;
  timed.pid = getpid();
  const double pushed_at = since_start_.seconds();
  const bool go_on = exchange(grads, timed, params);
  elapsed_s_ = since_start_.seconds();
  waited_s_ += elapsed_s_ - pushed_at;
  return go_on;
}

bool PsWorker::exchange(const float* grads, const PushHeader& h, float* params) {
  const int servers = static_cast<int>(ranges_.size());
  if (sync_) {
    for (int s = 0; s < servers; ++s) push_to(s, grads, h);
    return receive_replies(params);
  }
  // One server after the other; once one says stop, every server that would wait for this
  // worker's next push (it answered with parameters, or has not been reached) hears it stops.
  int s = 0;
  bool go_on = true;
  for (; s < servers && go_on; ++s) {
    push_to(s, grads, h);
    go_on = receive_reply(s, params);
  }
  if (go_on) return true;
  const PushHeader bye{PushKind::kBye};
  for (int t = 0; t < servers; ++t)
    if (t != s - 1) world_.send(&bye, sizeof bye, t);
  return false;
}

}  // namespace loom::ps
