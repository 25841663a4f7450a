#pragma once
// The data-parallel benchmark behind `loom bench ddp`. One measurement (run_ddp_bench_rank) runs
// on every rank of a job: training steps as the trainer runs them (the pipeline runtime's
// forward and backward, pp stages of 1F1B, with the bucketed all-reduce hooked into each chunk's
// last backward; AdamW) on random tokens, the same per-rank batch whatever the world size, one
// thread per rank. It reports, as medians over the timed steps (after warm-up), for the stage
// whose reduction is least hidden:
//   step_s      time of a whole step on rank 0 (steps end in a collective: ~ the slowest rank's)
//   exposed_s   time from the end of the slowest data-parallel peer's backward (its pipeline
//               step) to the end of the gradient all-reduces (rank skew is not communication
//               and is not counted)
//   comm_s      time of the same bucketed all-reduces run alone (nothing to hide behind)
//   overlap     1 - exposed_s / comm_s: the share of all-reduce time hidden behind backward
// run_ddp_bench launches itself (`loom bench ddp --worker ...`) on pp and on N ranks for each
// bucket size and compares: efficiency = step_s(pp ranks) / step_s(N ranks).
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/model/gpt_config.hpp"

namespace loom::parallel {

struct DdpBenchOptions {
  std::string config;  // JSON config file; its "model" section is used
  int nproc = 2;
  int pp = 1;            // pipeline stages (nproc / pp data-parallel replicas)
  int micro_batches = 0;  // under pp > 1: per batch; 0: pp
  int batch = 8;  // per rank
  int seq = 0;    // 0: the model's context_len
  int steps = 5;
  int warmup = 2;
  std::vector<double> bucket_mb = {25};
};

struct DdpBenchResult {
  int world = 1;
  double bucket_mb = 0;
  size_t buckets = 0;
  double step_s = 0, exposed_s = 0, comm_s = 0, overlap = 0;
  std::vector<double> stage_overlap;  // per pipeline stage: its least hidden rank's overlap
};

// On one rank of a job (collective): measures and returns the result (the same on every rank).
DdpBenchResult run_ddp_bench_rank(comm::Communicator& comm, const GPTConfig& model,
                                  const DdpBenchOptions& opts, double bucket_mb);

// Launches the measurements and prints the table to stdout. `program` is the loom binary.
void run_ddp_bench(const DdpBenchOptions& opts, const std::string& program);

// JSON for passing a result from a launched job back to run_ddp_bench.
std::string to_json_line(const DdpBenchResult& r);
DdpBenchResult ddp_bench_result_from_json(const std::string& line);

}  // namespace loom::parallel
