#pragma once
// The pipeline benchmark behind `loom bench pipeline`: for each pipeline depth, a job of pp
// local ranks (one thread each) runs the dense-layer model of mlp_chunk.hpp through every
// requested (micro-batches, schedule) and reports, as medians over the timed steps:
//   step_s     one step (all stages start after a barrier; the slowest stage's end)
//   bubble     measured: the mean over stages of idle time / step time, from the timestamps of
//              every F, B and W
//   theory     (p-1)/(m+p-1) for GPipe and 1F1B, (p-1)/(3m+p-1) for ZB-H1 (F = B = W),
//              (p-1)/(vm+p-1) for interleaved
//   simulated  the simulator's bubble with the F, B, W times measured on each stage
//   peak_mb    peak activation memory per stage (MiB)
// With --config, the stages are GPT stages of that model (gpt_stage_chunk.hpp), balanced by
// timed cost, on random tokens.
#include <string>
#include <vector>

#include "loom/comm/communicator.hpp"

namespace loom::pipeline {

struct PipelineBenchOptions {
  std::vector<int> pp = {2};
  std::vector<int> micro_batches = {4, 8};
  std::vector<std::string> schedules = {"gpipe", "1f1b", "zb1p"};
  int virtual_stages = 2;  // for interleaved rows
  int width = 1024;        // of the dense layers
  int layers = 8;
  int rows = 512;          // per step; a micro-batch has rows / micro_batches
  std::string config;      // non-empty: GPT stages of this config's model instead
  int batch = 8;           // GPT: sequences per step
  int seq = 128;           // GPT: tokens per sequence
  int steps = 5;
  int warmup = 2;
};

struct PipelineBenchRow {
  int pp = 0, micro_batches = 0, virtual_stages = 1;
  std::string schedule;
  double step_s = 0, bubble = 0, theory = 0, simulated = 0;
  std::vector<double> peak_mb;  // per stage
};

// On every rank of a job of pp ranks (collective): all rows for this pp.
std::vector<PipelineBenchRow> run_pipeline_bench_rank(comm::Communicator& world,
                                                      const PipelineBenchOptions& opts);

// Launches one job per pp and prints the table. `program` is the loom binary.
void run_pipeline_bench(const PipelineBenchOptions& opts, const std::string& program);

// The rows of a job as one JSON line, for passing them from the job back to run_pipeline_bench.
std::string to_json_line(const std::vector<PipelineBenchRow>& rows);
std::vector<PipelineBenchRow> pipeline_bench_rows_from_json(const std::string& line);

}  // namespace loom::pipeline
