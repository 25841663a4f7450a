#pragma once
// Non-blocking point-to-point between pipeline neighbours. A Communicator runs its calls one at
// a time, and a blocking send of a large message waits for the receiver, so sends and receives
// that must overlap (1F1B sends an activation forward while a gradient comes back on the same
// link) each get their own lane: a two-rank sub-communicator plus a thread that runs the lane's
// transfers in the order they were posted. A rank has up to four lanes:
//   act_out  activations to the next stage     act_in   activations from the previous stage
//   grad_out gradients to the previous stage   grad_in  gradients from the next stage
// Each lane carries one direction of one link, so the order of its messages is the schedule's
// order on both ends (Schedule checks that) and no two transfers can wait on each other.
// Every transfer is bounded by the communicator's timeout; a dead or silent neighbour makes the
// posted transfer's future throw loom::Error naming it. A stage that fails abandons its lanes, so
// it stops at once instead of waiting out the timeout of every transfer it had posted (and its
// neighbours, seeing it gone, stop too).
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "loom/comm/communicator.hpp"

namespace loom::pipeline {

// Shared so a transfer in flight keeps its buffer alive even if the caller gives up on it.
using Buffer = std::shared_ptr<std::vector<float>>;

class Lane {
 public:
  explicit Lane(std::unique_ptr<comm::Communicator> comm);
  ~Lane();  // finishes the transfers still posted (each bounded by the timeout)
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;

  std::shared_future<void> post_send(Buffer data);
  std::shared_future<void> post_recv(Buffer into);
  // Drops the transfers not started yet and ends the one in progress promptly (their futures
  // throw): for a stage that has failed and will not wait for them. Unusable afterwards.
  void abandon();
  const comm::Communicator& comm() const { return *comm_; }

 private:
  std::shared_future<void> post(std::function<void()> transfer);
  void loop();

  std::unique_ptr<comm::Communicator> comm_;
  int peer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

class P2PLanes {
 public:
  // Collective over `pp` (the ranks of one pipeline, in stage order). `wrap`: the last stage
  // also sends to the first (interleaved schedules). Makes 2 sub-communicators per class of
  // links (one class for 2 stages, two for more, three when wrapping around an odd number).
  P2PLanes(comm::Communicator& pp, bool wrap);

  Lane* act_out() { return act_out_.get(); }    // null where there is no next stage
  Lane* act_in() { return act_in_.get(); }      // null where there is no previous stage
  Lane* grad_out() { return grad_out_.get(); }
  Lane* grad_in() { return grad_in_.get(); }
  bool wrap() const { return wrap_; }
  // Lane::abandon on every lane.
  void abandon();

 private:
  bool wrap_;
  std::unique_ptr<Lane> act_out_, act_in_, grad_out_, grad_in_;
};

}  // namespace loom::pipeline
