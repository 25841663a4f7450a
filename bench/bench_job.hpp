#pragma once
// What the multi-rank benchmarks (`loom bench ddp`, `loom bench tp`) share: one measurement runs
// as a local job of `loom <args> --worker_out FILE`, whose rank 0 writes its result to FILE as
// one JSON line; timings are reported as medians.
#include <string>
#include <vector>

namespace loom::parallel {

// Runs the job on nproc local ranks of `program` and returns the line rank 0 wrote. Throws
// loom::Error naming `what` (e.g. "bench tp: the tp 2 measurement") if the job fails or writes
// nothing.
std::string run_bench_job(int nproc, std::vector<std::string> args, const std::string& program,
                          const std::string& what);

// The median of v (the upper one for an even count); 0 for none.
double median(std::vector<double> v);

}  // namespace loom::parallel
