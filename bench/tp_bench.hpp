#pragma once
// The tensor-parallel benchmark behind `loom bench tp`. For each tp size, a job of tp local ranks
// (the machine's threads divided among them) trains one model replica split tp ways on random
// tokens — forward, backward, grad norm, AdamW — and reports, as medians over the timed steps:
//   step_s       a whole step on rank 0
//   comm_s       time inside the tp all-reduces per step (rank 0; includes waiting for the
//                slower rank, which is what the step pays)
//   calls        tp collectives per step
// and per rank the bytes of parameters, gradients, AdamW moments, activations and, among them,
// the logits, so the 1/tp split of each is visible. With sequence_parallel each tp > 1 is measured
// again with Megatron sequence parallelism (a row "2 sp" under "2").
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/model/gpt_config.hpp"

namespace loom::parallel {

struct TpBenchOptions {
  std::string config;  // JSON config file; its "model" section is used
  std::vector<int> tp = {1, 2};
  int batch = 4;
  int seq = 0;      // 0: the model's context_len
  int threads = 0;  // in all, divided among the tp ranks; 0: the machine's
  int steps = 3;
  int warmup = 1;
  // Also measure each tp > 1 with sequence parallelism (the seq must be a multiple of tp).
  bool sequence_parallel = false;
};

struct TpBenchResult {
  int tp = 1, threads_per_rank = 1;
  bool sequence_parallel = false;
  double step_s = 0, comm_s = 0;
  double calls = 0;
  double param_bytes = 0, grad_bytes = 0, moment_bytes = 0, activation_bytes = 0, logits_bytes = 0;
};

// On one rank of a job of tp ranks (collective): measures and returns rank 0's result, with
// sequence parallelism when opts.sequence_parallel (and tp > 1).
TpBenchResult run_tp_bench_rank(comm::Communicator& world, const GPTConfig& model,
                                const TpBenchOptions& opts);

// Launches one job per tp size and prints the table to stdout. `program` is the loom binary.
void run_tp_bench(const TpBenchOptions& opts, const std::string& program);

std::string to_json_line(const TpBenchResult& r);
TpBenchResult tp_bench_result_from_json(const std::string& line);

}  // namespace loom::parallel
