#pragma once
// Pipeline schedules as data (ARCHITECTURE.md, "Round 2"): for every stage (pipeline rank), the
// list of actions it performs in one training step, in order. One runtime (runtime.hpp) executes
// any schedule; one simulator (simulator.hpp) predicts its step time, bubble and memory.
//
// Model chunks: with v virtual stages per rank (interleaved 1F1B), stage s holds chunks
// c = 0..v-1, and chunk c of stage s is virtual stage g = c * P + s of the model (Megatron's
// order), so a micro-batch's forward goes stage 0, 1, .., P-1, 0, 1, .. and wraps around once
// per chunk. Without interleaving v = 1 and every action has chunk 0.
//
// Actions of stage s (mb = micro-batch, c = chunk):
//   F(mb,c)         forward of chunk c on micro-batch mb; needs its input activation (received,
//                   or the tokens on virtual stage 0)
//   B(mb,c)         backward to the chunk's input (the critical path); needs F(mb,c) and, except
//                   on the last virtual stage, the gradient of the chunk's output
//   W(mb,c)         backward to the chunk's weights; after B(mb,c); frees mb's activations
//   SendAct(mb,c)   send F(mb,c)'s output to the next virtual stage (after F)
//   RecvAct(mb,c)   post the receive of F(mb,c)'s input from the previous virtual stage
//   SendGrad(mb,c)  send B(mb,c)'s input gradient to the previous virtual stage (after B)
//   RecvGrad(mb,c)  post the receive of the gradient B(mb,c) needs from the next virtual stage
// Sends and receives are non-blocking: a receive is posted ahead and waited for by the F or B
// that needs it; a send completes in the background.
#include <string>
#include <vector>

namespace loom::pipeline {

enum class Op { F, B, W, SendAct, RecvAct, SendGrad, RecvGrad };

struct Action {
  Op op;
  int mb;
  int chunk = 0;
  bool operator==(const Action&) const = default;
};

// "F(3,0)", "SendGrad(2,1)", ...
std::string to_string(const Action& a);
const char* name(Op op);

enum class ScheduleKind { GPipe, OneFOneB, Interleaved, ZeroBubbleH1 };
// gpipe, 1f1b, interleaved, zb1p (the names of --schedule); throws naming the flag otherwise.
ScheduleKind parse_schedule_kind(const std::string& s);
const char* name(ScheduleKind k);

class Schedule {
 public:
  // Checks the lists (see validate_schedule) and throws loom::Error naming the stage, the
  // micro-batch and the rule broken.
  Schedule(std::string name, int stages, int micro_batches, int virtual_stages,
           std::vector<std::vector<Action>> actions);

  const std::string& name() const { return name_; }
  int stages() const { return stages_; }
  int micro_batches() const { return micro_batches_; }
  int virtual_stages() const { return virtual_stages_; }
  const std::vector<Action>& actions(int stage) const { return actions_.at(stage); }

  // Chunk c of stage s is virtual stage c * stages + s; these say where its activations flow.
  int virtual_stage(int stage, int chunk) const { return chunk * stages_ + stage; }
  bool is_first(int stage, int chunk) const { return virtual_stage(stage, chunk) == 0; }
  bool is_last(int stage, int chunk) const {
    return virtual_stage(stage, chunk) == stages_ * virtual_stages_ - 1;
  }
  int next_stage(int stage) const { return (stage + 1) % stages_; }
  int prev_stage(int stage) const { return (stage + stages_ - 1) % stages_; }

 private:
  std::string name_;
  int stages_, micro_batches_, virtual_stages_;
  std::vector<std::vector<Action>> actions_;
};

// The schedule `kind` for `stages` ranks, `micro_batches` micro-batches and `virtual_stages`
// chunks per rank (only interleaved takes v > 1; it needs micro_batches % stages == 0).
Schedule make_schedule(ScheduleKind kind, int stages, int micro_batches, int virtual_stages = 1);

// Compute-only orders (F, B, W per stage) of each schedule, before make_schedule adds the sends
// and receives; exposed for tests and for writing new schedules.
std::vector<std::vector<Action>> compute_order(ScheduleKind kind, int stages, int micro_batches,
                                               int virtual_stages);

// Adds to compute-only lists the communication they imply: every receive is posted just before
// the compute action preceding its consumer (so it overlaps that compute), every send right
// after its producer. A B directly followed by its own W is one fused backward: its gradient is
// sent after the W (the runtime runs the pair as one call).
std::vector<std::vector<Action>> add_communication(const std::vector<std::vector<Action>>& compute,
                                                   int stages, int virtual_stages);

}  // namespace loom::pipeline
