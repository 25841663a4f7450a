// `loom bench moe --config C [--moe_experts E --moe_top_k K] [--nproc N]`: training throughput
// of a mixture-of-experts model against the dense model with the same active parameters (issue
// 19), on N local ranks at equal per-rank batch, one thread per rank:
//   dense  the peer: moe_experts 0, d_model chosen (a multiple of n_head) so that its parameters
//          come closest to the MoE model's active ones (moe::param_count)
//   moe    ep 1: every rank runs every expert (data parallel)
//   moe    ep N: the experts split over the N ranks, tokens travelling by all-to-all; its bytes
//          per step (sent by rank 0 to the others) and its share of the step
// Each measurement is a local job of `loom bench moe --worker_out FILE ...` (bench/bench_job.hpp);
// step times are medians. It prints figures; it asserts nothing about them.
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench_job.hpp"
#include "command_registry.hpp"
#include "loom/comm/communicator.hpp"
#include "loom/config/train_config.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/moe/moe_accounting.hpp"
#include "loom/parallel/data_parallel.hpp"
#include "loom/parallel/expert_parallel_group.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/pipeline/pipeline_training.hpp"

namespace {

struct Options {
  std::string config;
  int moe_experts = 0;  // 0: the config's
  int moe_top_k = 0;    // 0: the config's
  int nproc = 2;
  int batch = 4;
  int seq = 0;  // 0: context_len
  int steps = 10;
  int warmup = 2;
  // A launched measurement's rank: its model and ep, and where rank 0 writes its result.
  bool dense = false;
  int ep = 1;
  std::string worker_out;
};

// One measurement, as rank 0 saw it.
struct Measurement {
  double step_s = 0;
  double tokens_per_s = 0;   // all ranks' tokens
  double a2a_bytes = 0;      // per step, sent by rank 0 to the other ep ranks
  double a2a_s = 0;          // per step, rank 0's time in the all-to-alls
  double max_over_mean = 0;  // expert load, mean over the timed steps
};

// The MoE model of the config (with --moe_experts / --moe_top_k) or its dense peer.
loom::GPTConfig bench_model(const Options& o, bool dense) {
  loom::GPTConfig moe = loom::load_model_config(o.config);
  if (o.moe_experts > 0) moe.moe_experts = o.moe_experts;
  if (o.moe_top_k > 0) moe.moe_top_k = o.moe_top_k;
  moe.validate();
  LOOM_CHECK(moe.is_moe(), "bench moe: ", o.config, " is a dense model; pass --moe_experts E");
  if (!dense) return moe;
  const int64_t active = loom::moe::param_count(moe).active;
  loom::GPTConfig best = moe;
  best.moe_experts = 0;
  int64_t best_gap = -1;
  for (int d = moe.n_head; d <= 4 * moe.d_model; d += moe.n_head) {
    loom::GPTConfig c = best;
    c.d_model = d;
    const int64_t gap = std::llabs(c.num_params() - active);
    if (best_gap < 0 || gap < best_gap) best_gap = gap, best.d_model = d;
  }
  best.validate();
  return best;
}

// This rank's part of one measurement (collective over the job's ranks).
Measurement measure_rank(const Options& o) {
  loom::set_num_threads(1);
  const auto comm = loom::comm::communicator_from_env();
  const loom::GPTConfig cfg = bench_model(o, o.dense);
  const int T = o.seq > 0 ? o.seq : cfg.context_len;
  loom::parallel::Mesh mesh(*comm, loom::parallel::mesh_shape(comm->size(), 1, 1, o.ep));
  const auto ep = o.ep > 1 ? std::make_unique<loom::parallel::CommExpertParallelGroup>(mesh.ep())
                           : nullptr;
  loom::GPT model(cfg, {}, nullptr, ep.get());
  model.init_weights(1);  // identical replicas
  loom::parallel::DataParallel dp(&mesh.dp(), model, {}, {});
  loom::pipeline::PipelineTraining pipe(mesh, model, loom::pipeline::ScheduleKind::OneFOneB, 1, 1,
                                        loom::Recompute::kNone);
  loom::Rng rng(1000 + mesh.coord().dp);  // each rank its own tokens
  std::vector<int32_t> tokens(static_cast<size_t>(o.batch) * T + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  std::vector<double> step_s;
  Measurement m;
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    comm->barrier();  // every step starts together
    const auto before = ep ? ep->traffic() : loom::parallel::CommExpertParallelGroup::Traffic{};
    const loom::Timer t;
    model.zero_grad();
    loom::Rng dropout(1);
    pipe.forward_backward(tokens.data(), tokens.data() + 1, o.batch, T, 1.0f, dropout,
                          dp.backward_hook(true));
    dp.reduce_gradients();
    pipe.sum_over_stages(dp.grad_sq_sum(pipe.norm_skip()));  // as the trainer does, for clipping
    dp.step(1e-4f, 1.0f);
    if (s < o.warmup) continue;
    step_s.push_back(t.seconds());
    if (ep) {
      m.a2a_bytes += static_cast<double>(ep->traffic().bytes_sent - before.bytes_sent) / o.steps;
      m.a2a_s += (ep->traffic().seconds - before.seconds) / o.steps;
    }
    m.max_over_mean += pipe.moe_stats().max_over_mean_load / o.steps;
  }
  m.step_s = loom::parallel::median(step_s);
  m.tokens_per_s = static_cast<double>(o.batch) * T * comm->size() / m.step_s;
  if (comm->rank() == 0) {
    std::ofstream(o.worker_out) << nlohmann::json{{"step_s", m.step_s},
                                                  {"tokens_per_s", m.tokens_per_s},
                                                  {"a2a_bytes", m.a2a_bytes},
                                                  {"a2a_s", m.a2a_s},
                                                  {"max_over_mean", m.max_over_mean}}
                                       .dump()
                                << "\n";
  }
  return m;
}

Measurement launch(const Options& o, bool dense, int ep) {
  std::vector<std::string> args = {"bench", "moe", "--config", o.config, "--moe_experts",
                                   std::to_string(o.moe_experts), "--moe_top_k",
                                   std::to_string(o.moe_top_k), "--batch_size",
                                   std::to_string(o.batch), "--seq_len", std::to_string(o.seq),
                                   "--steps", std::to_string(o.steps), "--warmup",
                                   std::to_string(o.warmup), "--ep", std::to_string(ep)};
  if (dense) args.push_back("--dense");
  const std::string what = std::string("bench moe: the ") + (dense ? "dense" : "moe") + " ep " +
                           std::to_string(ep) + " measurement";
  const auto j = nlohmann::json::parse(
      loom::parallel::run_bench_job(o.nproc, args, "/proc/self/exe", what));
  return {j.at("step_s"), j.at("tokens_per_s"), j.at("a2a_bytes"), j.at("a2a_s"),
          j.at("max_over_mean")};
}

int run(const Options& o) {
  if (!o.worker_out.empty()) {
    measure_rank(o);
    return 0;
  }
  LOOM_CHECK(o.nproc >= 2, "bench moe: --nproc must be >= 2 (ep runs over the ranks), got ",
             o.nproc);
  const loom::GPTConfig moe = bench_model(o, false), dense = bench_model(o, true);
  LOOM_CHECK(moe.moe_experts % o.nproc == 0, "bench moe: --nproc ", o.nproc,
             " (the ep of the split measurement) must divide moe_experts ", moe.moe_experts);
  const loom::moe::ParamCount count = loom::moe::param_count(moe);
  std::printf("bench moe: %s | %d experts, top %d, every %d blocks, capacity factor %g | active "
              "params %lld of %lld | dense peer: d_model %d, %lld params | %d ranks, per-rank "
              "batch %d x seq %d, 1 thread per rank | medians of %d steps after %d warm-up\n",
              o.config.c_str(), moe.moe_experts, moe.moe_top_k, moe.moe_every,
              moe.moe_capacity_factor, static_cast<long long>(count.active),
              static_cast<long long>(count.total), dense.d_model,
              static_cast<long long>(dense.num_params()), o.nproc, o.batch,
              o.seq > 0 ? o.seq : moe.context_len, o.steps, o.warmup);
  const Measurement base = launch(o, true, 1);
  struct Row {
    const char* model;
    int ep;
    Measurement m;
  };
  const Row rows[] = {{"dense", 1, base}, {"moe", 1, launch(o, false, 1)},
                      {"moe", o.nproc, launch(o, false, o.nproc)}};
  std::printf("%-6s %3s %9s %10s %9s %12s %10s %9s\n", "model", "ep", "step_ms", "tokens/s",
              "vs dense", "a2a_KB/step", "a2a share", "max/mean");
  for (const Row& r : rows) {
    const bool moe_row = r.model[0] == 'm';
    std::printf("%-6s %3d %9.1f %10.0f %8.2fx %12.1f %9.1f%% %9s\n", r.model, r.ep,
                r.m.step_s * 1e3, r.m.tokens_per_s, r.m.tokens_per_s / base.tokens_per_s,
                r.m.a2a_bytes / 1024, 100 * r.m.a2a_s / r.m.step_s,
                moe_row ? std::to_string(r.m.max_over_mean).substr(0, 5).c_str() : "-");
  }
  std::fflush(stdout);
  return 0;
}

const bool registered = loom::cli::register_command(
    "bench moe",
    "Mixture of experts: training tokens/s against the dense model with the same active "
    "parameters, at ep 1 and ep N; all-to-all bytes and share of the step",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--config", o->config, "config file (its \"model\" section is used)")
          ->required();
      app.add_option("--moe_experts", o->moe_experts, "experts per MoE block; 0: the config's")
          ->capture_default_str();
      app.add_option("--moe_top_k", o->moe_top_k, "experts per token; 0: the config's")
          ->capture_default_str();
      app.add_option("--nproc,-n", o->nproc, "local ranks of every measurement (and ep of the "
                     "split one)")->capture_default_str();
      app.add_option("--batch_size", o->batch, "sequences per rank per step")->capture_default_str();
      app.add_option("--seq_len", o->seq, "sequence length; 0: context_len")->capture_default_str();
      app.add_option("--steps", o->steps, "timed steps")->capture_default_str();
      app.add_option("--warmup", o->warmup, "untimed steps first")->capture_default_str();
      app.add_flag("--dense", o->dense, "(internal) a measurement of the dense peer")->group("");
      app.add_option("--ep", o->ep, "(internal) a measurement's ep")->group("");
      app.add_option("--worker_out", o->worker_out, "(internal) result file of a launched rank")
          ->group("");
      return [o] { return run(*o); };
    });

}  // namespace
