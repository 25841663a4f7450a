#pragma once
// A worker's side of the parameter-server protocol (ps_protocol.hpp): it pulls the whole
// parameter buffer from the servers (each sends its range) and pushes its gradient to them
// (each gets its range). In sync mode a push goes out to every server before any reply is
// awaited (the servers need every push of the step before they update and answer), so they
// receive and update concurrently. In async and ssp mode the worker pushes to server 0 and
// takes its reply, then server 1, ...: a server may answer (and, under MPI, block in sending
// its answer) before the push reaches the others, and a worker that sent everything first could
// then hold a server that holds another worker that holds it.
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/timer.hpp"
#include "loom/parallel/ps/cut_message_fault.hpp"
#include "loom/parallel/ps/ps_protocol.hpp"
#include "loom/parallel/ps/server_ranges.hpp"

namespace loom::ps {

class PsWorker {
 public:
  // world: ranks 0..servers-1 are the servers; this rank is a worker.
  PsWorker(comm::Communicator& world, int servers, size_t num_params, bool sync);

  // The first pull: every server's range of the parameters into params (the whole buffer).
  // False when the servers say training is already over.
  bool pull(float* params);
  // Pushes grads (the whole buffer; each server gets its range) with `h` (its waited_s,
  // elapsed_s and pid filled in here), then pulls the parameters the servers answer with. False when a
  // server says training is over (the servers that answered with parameters are told the worker
  // stops).
  bool push_pull(const float* grads, const PushHeader& h, float* params);

 private:
  // Every server's reply; false if any said stop.
  bool receive_replies(float* params);
  // push_pull's messages: the push to every server and their replies.
  bool exchange(const float* grads, const PushHeader& h, float* params);

  // Waits for server s's reply for up to twice the comm timeout (in chunks, each a bounded
  // wait): the ssp gate may hold it while the server waits out a hung worker's timeout before
  // dropping it. A server gone ends the wait (the reply's recv then names it).
  void await_reply(int s);
  // Server s's reply: true for parameters (received into params), false for stop.
  bool receive_reply(int s, float* params);
  void push_to(int s, const float* grads, const PushHeader& h);

  comm::Communicator& world_;
  std::vector<ParamRange> ranges_;
  bool sync_;
  CutMessageFault cut_ = CutMessageFault::from_env();
  const Timer since_start_;
  double waited_s_ = 0, elapsed_s_ = 0;  // up to the last reply
};

}  // namespace loom::ps
