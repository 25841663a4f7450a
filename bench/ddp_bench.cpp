#include "bench/ddp_bench.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "bench/bench_job.hpp"
#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/launch/launcher.hpp"
#include "loom/model/gpt.hpp"
#include "loom/parallel/data_parallel.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/pipeline/pipeline_training.hpp"

namespace loom::parallel {
namespace {

size_t bucket_bytes(double mb) { return static_cast<size_t>(mb * (1 << 20)); }

// Seconds on a clock the ranks of one host share (steady_clock is CLOCK_MONOTONIC, system-wide),
// counted from an origin rank 0 picks, so that a float holds them to about a microsecond.
class SharedClock {
 public:
  explicit SharedClock(comm::Communicator& comm) {
    const double t = absolute();
    float origin[2] = {static_cast<float>(t), 0.0f};  // t as float + its rounding error
    origin[1] = static_cast<float>(t - origin[0]);
    comm.broadcast(origin, 2, 0);
    origin_ = static_cast<double>(origin[0]) + origin[1];
  }
  double now() const { return absolute() - origin_; }

 private:
  static double absolute() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  double origin_;
};

// Runs one measurement as `world` local ranks; returns rank 0's result.
DdpBenchResult launch_measurement(const DdpBenchOptions& o, int world, double bucket_mb,
                                  const std::string& program) {
  return ddp_bench_result_from_json(run_bench_job(
      world,
      {"bench", "ddp", "--config", o.config, "--batch_size", std::to_string(o.batch), "--seq_len",
       std::to_string(o.seq), "--steps", std::to_string(o.steps), "--warmup",
       std::to_string(o.warmup), "--bucket_mb", std::to_string(bucket_mb), "--pp",
       std::to_string(o.pp), "--micro_batches", std::to_string(o.micro_batches)},
      program, "bench ddp: the " + std::to_string(world) + "-rank measurement"));
}

}  // namespace

DdpBenchResult run_ddp_bench_rank(comm::Communicator& comm, const GPTConfig& model_cfg,
                                  const DdpBenchOptions& o, double bucket_mb) {
  const int T = o.seq > 0 ? o.seq : model_cfg.context_len;
  Mesh mesh(comm, mesh_shape(comm.size(), 1, o.pp));
  const pipeline::Partition partition = pipeline::stage_partition(comm, model_cfg, o.pp, T, 1);
  GPT model(model_cfg, pipeline::stage_shard(partition, mesh.coord().pp, 0, 1));
  model.init_weights(1);  // identical replicas
  DataParallel dp(&mesh.dp(), model, {}, {0, bucket_mb});
  dp.check_identical_replicas();
  const int micro_batches = o.pp == 1 ? 1 : o.micro_batches > 0 ? o.micro_batches : o.pp;
  pipeline::PipelineTraining pipe(mesh, model, pipeline::ScheduleKind::OneFOneB, micro_batches,
                                 /*virtual_stages=*/1, Recompute::kNone);
  Rng rng(1000 + mesh.coord().dp);  // each replica its own data
  std::vector<int32_t> tokens(static_cast<size_t>(o.batch) * T + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(model_cfg.vocab_size));

  std::vector<double> step, exposed;
  std::vector<float> backward_end(mesh.dp().size());
  const SharedClock clock(comm);
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    comm.barrier();  // every step starts together: the time is the step's, not a rank's drift
    Timer t;
    model.zero_grad();
    Rng dropout(1);
    pipe.forward_backward(tokens.data(), tokens.data() + 1, o.batch, T, 1.0f, dropout,
                          dp.backward_hook(true));
    const double my_backward_end = clock.now();
    dp.reduce_gradients();
    const double reduced = clock.now();
    pipe.sum_over_stages(dp.grad_sq_sum(pipe.norm_skip()));  // as the trainer does, for clipping
    dp.step(1e-4f, 1.0f);
    const double step_s = t.seconds();
    // Exposed communication: from the end of the slowest rank's backward (no all-reduce can
    // finish before it) to the end of the all-reduces. Waiting for a slower rank is skew, not
    // communication, so it is not counted.
    std::fill(backward_end.begin(), backward_end.end(), 0.0f);
    backward_end[mesh.coord().dp] = static_cast<float>(my_backward_end);
    mesh.dp().allgather(backward_end.data(), backward_end.size());
    const double last_backward_end = *std::max_element(backward_end.begin(), backward_end.end());
    if (s < o.warmup) continue;
    step.push_back(step_s);
    exposed.push_back(std::max(0.0, reduced - last_backward_end));
  }
  DdpBenchResult r;
  r.world = comm.size();
  r.bucket_mb = bucket_mb;
  r.step_s = median(step);
  if (mesh.dp().size() > 1) {
    // The same bucketed all-reduces with nothing to overlap: all launched at once, then waited.
    GradientBuckets buckets(mesh.dp(), model.grads(), model.num_params(), bucket_bytes(bucket_mb));
    std::vector<double> comm_s;
    for (int s = 0; s < o.warmup + o.steps; ++s) {
      comm.barrier();
      buckets.begin();
      const double w = buckets.finish();
      if (s >= o.warmup) comm_s.push_back(w);
    }
    r.buckets = buckets.num_buckets();
    r.exposed_s = median(exposed);
    r.comm_s = median(comm_s);
    r.overlap = r.comm_s > 0 ? std::clamp(1.0 - r.exposed_s / r.comm_s, 0.0, 1.0) : 0.0;
  }
  // Every rank gets the figures of the stage whose reduction is least hidden.
  std::vector<float> all(3 * static_cast<size_t>(comm.size()), 0.0f);
  const size_t me = 3 * static_cast<size_t>(comm.rank());
  all[me] = static_cast<float>(r.overlap);
  all[me + 1] = static_cast<float>(r.exposed_s);
  all[me + 2] = static_cast<float>(r.comm_s);
  comm.allgather(all.data(), all.size());
  size_t worst = me;
  r.stage_overlap.assign(o.pp, 1.0);
  for (size_t i = 0; i < all.size(); i += 3) {
    if (all[i] < all[worst]) worst = i;
    const int stage = mesh_coord(mesh.shape(), static_cast<int>(i / 3)).pp;
    r.stage_overlap[stage] = std::min<double>(r.stage_overlap[stage], all[i]);
  }
  r.overlap = all[worst];
  r.exposed_s = all[worst + 1];
  r.comm_s = all[worst + 2];
  return r;
}

std::string to_json_line(const DdpBenchResult& r) {
  return nlohmann::json{{"world", r.world},       {"bucket_mb", r.bucket_mb}, {"buckets", r.buckets},
                        {"step_s", r.step_s},     {"exposed_s", r.exposed_s}, {"comm_s", r.comm_s},
                        {"overlap", r.overlap},     {"stage_overlap", r.stage_overlap}}
      .dump();
}

DdpBenchResult ddp_bench_result_from_json(const std::string& line) {
  const auto j = nlohmann::json::parse(line, nullptr, false);
  LOOM_CHECK(!j.is_discarded() && j.is_object(), "bench ddp: bad result line: ", line);
  DdpBenchResult r;
  r.world = j.at("world");
  r.bucket_mb = j.at("bucket_mb");
  r.buckets = j.at("buckets");
  r.step_s = j.at("step_s");
  r.exposed_s = j.at("exposed_s");
  r.comm_s = j.at("comm_s");
  r.overlap = j.at("overlap");
  r.stage_overlap = j.at("stage_overlap").get<std::vector<double>>();
  return r;
}

void run_ddp_bench(const DdpBenchOptions& o, const std::string& program) {
  LOOM_CHECK(o.pp >= 1, "bench ddp: --pp must be >= 1, got ", o.pp);
  LOOM_CHECK(o.nproc >= 2 * o.pp && o.nproc % o.pp == 0, "bench ddp: --nproc must be a multiple "
             "of --pp ", o.pp, " with at least 2 data-parallel replicas, got ", o.nproc);
  LOOM_CHECK(!o.bucket_mb.empty(), "bench ddp: no bucket size given");
  const DdpBenchResult one = launch_measurement(o, o.pp, o.bucket_mb.front(), program);
  std::vector<DdpBenchResult> many;
  for (double mb : o.bucket_mb) many.push_back(launch_measurement(o, o.nproc, mb, program));

  char line[256];
  std::printf("bench ddp: %s | per-rank batch %d x seq %s | pp %d | 1 thread per rank | medians of "
              "%d steps after %d warm-up | exposed, overlap: the least hidden stage's\n",
              o.config.c_str(), o.batch, o.seq > 0 ? std::to_string(o.seq).c_str() : "context_len",
              o.pp, o.steps, o.warmup);
  std::printf("%5s %9s %7s %9s %12s %10s %7s %10s  %s\n", "ranks", "bucket_mb", "buckets", "step_ms",
              "allreduce_ms", "exposed_ms", "overlap", "efficiency", "overlap per stage");
  std::snprintf(line, sizeof line, "%5d %9s %7s %9.1f %12s %10s %7s %10.3f\n", o.pp, "-", "-",
                one.step_s * 1e3, "-", "-", "-", 1.0);
  std::fputs(line, stdout);
  for (const auto& r : many) {
    std::snprintf(line, sizeof line, "%5d %9.3g %7zu %9.1f %12.2f %10.2f %6.0f%% %10.3f ",
                  r.world, r.bucket_mb, r.buckets, r.step_s * 1e3, r.comm_s * 1e3,
                  r.exposed_s * 1e3, r.overlap * 100, one.step_s / r.step_s);
    std::fputs(line, stdout);
    for (size_t s = 0; s < r.stage_overlap.size(); ++s)
      std::printf(" %zu: %.0f%%", s, r.stage_overlap[s] * 100);
    std::printf("\n");
  }
  std::fflush(stdout);
}

}  // namespace loom::parallel
