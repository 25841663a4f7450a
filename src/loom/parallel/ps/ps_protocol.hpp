#pragma once
// The messages between parameter servers and workers (point to point over the world
// communicator; world ranks 0..S-1 are the servers, S..world-1 the workers). Every message is a
// fixed header, then (where it says so) floats of the receiving or sending server's range.
//   worker -> server  PushHeader{kPush}, then the gradient of the server's range (range floats)
//                     PushHeader{kBye}: the worker stops (another server told it to)
//                     (sync: a push goes to every server before the replies are read; async and
//                     ssp: to server 0, its reply, then server 1, ...: see ps_worker.hpp)
//   server -> worker  ReplyHeader{kContinue}, then the parameters of the range (range floats)
//                     ReplyHeader{kStop}: training is over, nothing follows
//   server s -> 0     SnapshotHeader, then params, m, v of server s's range (3 x range floats)
// The first message of a run is each server's ReplyHeader{kContinue} + parameters to every
// worker (its first pull).
#include <array>
#include <cstdint>

namespace loom::ps {

enum class PushKind : uint32_t { kPush = 1, kBye = 2 };

struct PushHeader {
  PushKind kind = PushKind::kPush;
  uint32_t signal = 0;    // the preemption signal the worker received (0: none)
  double loss = 0;        // mean loss of the step's micro-batches
  double grad_norm = 0;   // global norm of the pushed gradient (async/ssp clip with it)
  uint64_t data_epoch = 0, data_samples = 0;  // the worker's loader position after the step
  std::array<uint64_t, 4> dropout_rng{};      // the worker's dropout stream after the step
  // The worker's time so far (bench ps, the ps_staleness record): waiting for the servers' replies
  // (pulls, and under ssp the gate) out of all of it, both up to its previous reply.
  double waited_s = 0, elapsed_s = 0;
  int64_t pid = 0;  // the worker's process (under mpirun server 0 ends a dropped one still running)
};

enum class ReplyStatus : uint32_t { kContinue = 1, kStop = 2 };

struct ReplyHeader {
  ReplyStatus status = ReplyStatus::kContinue;
  uint32_t pad = 0;
  int64_t version = 0;  // the server's update count of the parameters that follow
};

// Why a server sends its state to server 0: a periodic checkpoint at `step`, or the final one.
enum class SnapshotKind : uint32_t { kPeriodic = 1, kFinal = 2 };

struct SnapshotHeader {
  SnapshotKind kind = SnapshotKind::kPeriodic;
  uint32_t pad = 0;
  int64_t step = 0;  // the sending server's update count
};

}  // namespace loom::ps
