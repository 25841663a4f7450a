#include "loom/parallel/ps/ps_worker.hpp"

#include "loom/core/check.hpp"

namespace loom::ps {

PsWorker::PsWorker(comm::Communicator& world, int servers, size_t num_params)
    : world_(world), ranges_(server_ranges(num_params, servers)) {
  LOOM_CHECK(world.rank() >= servers, "ps: rank ", world.rank(), " is a server, not a worker");
}

bool PsWorker::receive_replies(float* params) {
  const int servers = static_cast<int>(ranges_.size());
  std::vector<int> continuing;
  for (int s = 0; s < servers; ++s) {
    ReplyHeader h;
    world_.recv(&h, sizeof h, s);
    if (h.status == ReplyStatus::kStop) continue;
    LOOM_CHECK(h.status == ReplyStatus::kContinue, "ps: server rank ", s, " sent reply status ",
               static_cast<uint32_t>(h.status));
    world_.recv(params + ranges_[s].begin, ranges_[s].size() * sizeof(float), s);
    continuing.push_back(s);
  }
  if (static_cast<int>(continuing.size()) == servers) return true;
  // Another server ended training first (async): those still expecting a push hear it stops.
  const PushHeader bye{PushKind::kBye};
  for (const int s : continuing) world_.send(&bye, sizeof bye, s);
  return false;
}

bool PsWorker::pull(float* params) { return receive_replies(params); }

bool PsWorker::push_pull(const float* grads, const PushHeader& h, float* params) {
  LOOM_CHECK(h.kind == PushKind::kPush, "ps: a push must be PushKind::kPush");
  for (size_t s = 0; s < ranges_.size(); ++s) {
    world_.send(&h, sizeof h, static_cast<int>(s));
    world_.send(grads + ranges_[s].begin, ranges_[s].size() * sizeof(float), static_cast<int>(s));
  }
  return receive_replies(params);
}

}  // namespace loom::ps
