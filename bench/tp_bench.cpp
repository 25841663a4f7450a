#include "bench/tp_bench.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/bench_job.hpp"
#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/parallel/data_parallel.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/tensor_parallel.hpp"

namespace loom::parallel {
namespace {

int total_threads(const TpBenchOptions& o) {
  return o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// Runs the measurement of one tp size (with sequence parallelism: sp) as tp local ranks; returns
// rank 0's result.
TpBenchResult launch_measurement(const TpBenchOptions& o, int tp, bool sp,
                                 const std::string& program) {
  const int threads = std::max(1, total_threads(o) / tp);
  std::vector<std::string> args = {
      "bench", "tp", "--config", o.config, "--tp", std::to_string(tp), "--batch_size",
      std::to_string(o.batch), "--seq_len", std::to_string(o.seq), "--threads",
      std::to_string(threads), "--steps", std::to_string(o.steps), "--warmup",
      std::to_string(o.warmup)};
  if (sp) args.push_back("--sequence_parallel");
  return tp_bench_result_from_json(run_bench_job(
      tp, args, program,
      "bench tp: the tp " + std::to_string(tp) + (sp ? " sp" : "") + " measurement"));
}

}  // namespace

TpBenchResult run_tp_bench_rank(comm::Communicator& world, const GPTConfig& model_cfg,
                                const TpBenchOptions& o) {
  const int T = o.seq > 0 ? o.seq : model_cfg.context_len;
  const int tp = world.size();
  Mesh mesh(world, mesh_shape(tp, tp, 1));
  CommTensorParallelGroup group(mesh.tp());
  ModelShard shard{mesh.coord().tp, tp};
  shard.sequence_parallel = o.sequence_parallel && tp > 1;
  LOOM_CHECK(!shard.sequence_parallel || T % tp == 0, "bench tp: --sequence_parallel: seq_len ",
             T, " must be divisible by --tp ", tp);
  GPT model(model_cfg, shard, tp > 1 ? &group : nullptr);
  model.init_weights(1);
  ModelRunner<float> runner(model);
  DataParallel dp(nullptr, model, {}, {}, &mesh.tp());
  Rng rng(1000);  // the tp ranks of a replica share its batch
  std::vector<int32_t> tokens(static_cast<size_t>(o.batch) * T + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(model_cfg.vocab_size));

  std::vector<double> step, comm_s, calls;
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    world.barrier();
    group.reset_stats();
    Timer t;
    model.zero_grad();
    runner.forward(tokens.data(), tokens.data() + 1, o.batch, T, /*train=*/true);
    runner.backward(1.0f);
    dp.grad_sq_sum();  // as the trainer does, for clipping
    dp.step(1e-4f, 1.0f);
    const double step_s = t.seconds();
    if (s < o.warmup) continue;
    step.push_back(step_s);
    comm_s.push_back(group.seconds());
    calls.push_back(static_cast<double>(group.calls()));
  }
  TpBenchResult r;
  r.tp = tp;
  r.sequence_parallel = shard.sequence_parallel;
  r.threads_per_rank = o.threads;
  r.step_s = median(step);
  r.comm_s = median(comm_s);
  r.calls = median(calls);
  r.param_bytes = r.grad_bytes = static_cast<double>(model.num_params()) * sizeof(float);
  r.moment_bytes = 2 * r.param_bytes;
  r.activation_bytes = static_cast<double>(runner.activation_bytes());
  r.logits_bytes = static_cast<double>(runner.logits_bytes());
  return r;
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TpBenchResult, tp, threads_per_rank, sequence_parallel,
                                   step_s, comm_s, calls, param_bytes, grad_bytes, moment_bytes, activation_bytes,
                                   logits_bytes)

std::string to_json_line(const TpBenchResult& r) { return nlohmann::json(r).dump(); }

TpBenchResult tp_bench_result_from_json(const std::string& line) {
  const auto j = nlohmann::json::parse(line, nullptr, false);
  LOOM_CHECK(!j.is_discarded() && j.is_object(), "bench tp: bad result line: ", line);
  return j.get<TpBenchResult>();
}

void run_tp_bench(const TpBenchOptions& o, const std::string& program) {
  LOOM_CHECK(!o.tp.empty(), "bench tp: no tp size given");
  std::vector<TpBenchResult> results;
  for (int tp : o.tp) {
    results.push_back(launch_measurement(o, tp, false, program));
    if (o.sequence_parallel && tp > 1) results.push_back(launch_measurement(o, tp, true, program));
  }
  const TpBenchResult& base = results.front();
  std::printf("bench tp: %s | batch %d x seq %s | %d threads in all, divided among the tp ranks | "
              "medians of %d steps after %d warm-up\n",
              o.config.c_str(), o.batch, o.seq > 0 ? std::to_string(o.seq).c_str() : "context_len",
              total_threads(o), o.steps, o.warmup);
  std::printf("memory per rank in MiB, (x) = fraction of tp %d's; sp: sequence parallel\n", base.tp);
  std::printf("%6s %10s %9s %13s %6s %6s %15s %15s %15s %15s %15s\n", "tp", "ranks x th",
              "step_ms", "tp_allred_ms", "share", "calls", "params", "grads", "moments",
              "activations", "logits");
  const double mib = 1 << 20;
  for (const auto& r : results) {
    auto col = [&](double bytes, double base_bytes) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "%.1f (%.2f)", bytes / mib, base_bytes > 0 ? bytes / base_bytes : 0);
      return std::string(buf);
    };
    const std::string tp = std::to_string(r.tp) + (r.sequence_parallel ? " sp" : "");
    std::printf("%6s %6d x %d %9.1f %13.1f %5.1f%% %6.0f %15s %15s %15s %15s %15s\n", tp.c_str(), r.tp,
                r.threads_per_rank, r.step_s * 1e3, r.comm_s * 1e3,
                r.step_s > 0 ? 100 * r.comm_s / r.step_s : 0.0, r.calls,
                col(r.param_bytes, base.param_bytes).c_str(), col(r.grad_bytes, base.grad_bytes).c_str(),
                col(r.moment_bytes, base.moment_bytes).c_str(),
                col(r.activation_bytes, base.activation_bytes).c_str(),
                col(r.logits_bytes, base.logits_bytes).c_str());
  }
  std::fflush(stdout);
}

}  // namespace loom::parallel
