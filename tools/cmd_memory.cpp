// `loom memory`: predicted bytes per rank of a training step, by component (train/memory_model),
// beside the peak RSS measured while running real steps of that configuration. `--nproc N`
// relaunches the command as N local ranks (shm backend), each measuring itself.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "command_registry.hpp"
#include "loom/comm/communicator.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/rng.hpp"
#include "loom/launch/environment.hpp"
#include "loom/launch/launcher.hpp"
#include "loom/model/gpt.hpp"
#include "loom/parallel/data_parallel.hpp"
#include "loom/train/memory_model.hpp"
#include "loom/train/train_config.hpp"

namespace {

struct Options {
  std::string config;
  int batch = 4, seq = 256, threads = 0, nproc = 1, zero = 0, steps = 2;
  double bucket_mb = 25;
  std::string precision = "f32";
  std::string recompute = "none";
};

// kB fields of /proc/self/status ("VmRSS", "VmHWM") in bytes.
double status_bytes(const std::string& field) {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

std::vector<std::string> rank_args(const Options& o) {
  return {"memory", "--config", o.config, "--batch", std::to_string(o.batch), "--seq",
          std::to_string(o.seq), "--threads", std::to_string(o.threads), "--zero",
          std::to_string(o.zero), "--steps", std::to_string(o.steps), "--bucket_mb",
          std::to_string(o.bucket_mb), "--precision", o.precision, "--recompute", o.recompute};
}

// Runs `steps` training steps (random tokens) as this rank of the data-parallel group.
void run_steps(const Options& o, const loom::GPTConfig& cfg, loom::kernels::MatmulPrecision p,
               loom::comm::Communicator* comm) {
  loom::GPT model(cfg);
  model.init_weights(1);
  model.set_recompute(loom::parse_recompute(o.recompute));
  loom::parallel::DataParallel dp(comm, model, loom::AdamWParams{}, {o.zero, o.bucket_mb});
  loom::Rng rng(7);
  std::vector<int32_t> tokens(static_cast<size_t>(o.batch) * o.seq + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  for (int s = 0; s < o.steps; ++s) {
    model.zero_grad();
    {
      loom::kernels::MatmulPrecisionScope precision(p);
      model.forward(tokens.data(), tokens.data() + 1, o.batch, o.seq, /*train=*/true, &rng);
      model.backward(1.0f, dp.backward_hook(true));
    }
    dp.reduce_gradients();
    dp.grad_sq_sum();
    dp.step(1e-4f, 1.0f);
  }
}

int run(const Options& o) {
  LOOM_CHECK(o.nproc >= 1, "--nproc must be >= 1, got ", o.nproc);
  LOOM_CHECK(o.zero >= 0 && o.zero <= 2, "--zero must be 0, 1 or 2, got ", o.zero);
  LOOM_CHECK(o.steps >= 1, "--steps must be >= 1, got ", o.steps);
  LOOM_CHECK(o.batch >= 1, "--batch must be >= 1, got ", o.batch);
  const loom::GPTConfig cfg = loom::load_model_config(o.config);
  LOOM_CHECK(o.seq >= 1 && o.seq <= cfg.context_len, "--seq must be in [1, ", cfg.context_len,
             "], got ", o.seq);
  const auto requested = loom::kernels::parse_precision(o.precision, "--precision");
  const loom::Recompute recompute = loom::parse_recompute(o.recompute);
  const auto env = loom::launch::detect_environment();
  if (o.nproc > 1 && env.launcher == loom::launch::Launcher::None) {
    return loom::launch::launch_local(o.nproc, rank_args(o), {});
  }
  const auto precision = loom::kernels::resolve_precision(requested);
  int threads = o.threads;
  if (threads == 0 && env.local_world_size > 1) {
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                              env.local_world_size);
  }
  loom::set_num_threads(threads);
  const auto comm = loom::comm::communicator_from_env();
  const int world = comm->size();

  loom::MemoryOptions mo;
  mo.model = cfg;
  mo.batch = o.batch;
  mo.seq = o.seq;
  mo.threads = omp_get_max_threads();
  mo.precision = precision;
  mo.world = world;
  mo.zero = o.zero;
  mo.bucket_mb = o.bucket_mb;
  mo.recompute = recompute;
  const auto items = loom::predict_memory(mo);
  const double runtime = status_bytes("VmRSS");  // binary, libraries, comm set-up: measured
  run_steps(o, cfg, precision, world > 1 ? comm.get() : nullptr);
  const double measured = status_bytes("VmHWM");
  const double predicted = loom::total_bytes(items) + runtime;
  const double MiB = 1024.0 * 1024.0;
  char line[256];
  if (comm->rank() == 0) {
    std::snprintf(line, sizeof line,
                  "memory per rank: %lld params, batch %d x seq %d, %s matmuls, %d rank(s), "
                  "ZeRO-%d, recompute %s, %d thread(s)\n",
                  static_cast<long long>(cfg.num_params()), o.batch, o.seq,
                  loom::kernels::precision_name(precision), world, o.zero,
                  loom::recompute_name(recompute), mo.threads);
    std::fputs(line, stdout);
    std::string group;
    for (const auto& i : items) {
      if (i.group != group) std::printf("%s:\n", (group = i.group).c_str());
      std::printf("  %-50s %10.1f MiB\n", i.name.c_str(), i.bytes / MiB);
    }
    std::printf("  %-50s %10.1f MiB\n", "process before the model (measured VmRSS)",
                runtime / MiB);
  }
  std::snprintf(line, sizeof line,
                "predicted %.1f MiB | measured peak RSS %.1f MiB over %d step(s) | "
                "predicted / measured %.3f\n",
                predicted / MiB, measured / MiB, o.steps, predicted / measured);
  std::fputs(line, stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "memory", "Predicted memory per rank of a training step beside its measured peak RSS",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--config", o->config, "config file (its \"model\" section is used)")
          ->required();
      app.add_option("--batch", o->batch, "sequences per rank")->capture_default_str();
      app.add_option("--seq", o->seq, "sequence length")->capture_default_str();
      app.add_option("--threads", o->threads, "threads per rank (0: default)")
          ->capture_default_str();
      app.add_option("--precision", o->precision, "matmul precision: f32 or bf16")
          ->capture_default_str();
      app.add_option("--nproc", o->nproc, "data-parallel ranks (local, shm)")
          ->capture_default_str();
      app.add_option("--zero", o->zero, "ZeRO stage: 0, 1 or 2")->capture_default_str();
      app.add_option("--recompute", o->recompute, "activation recomputation: none, selective, full")
          ->capture_default_str();
      app.add_option("--bucket_mb", o->bucket_mb, "gradient bucket size (MiB)")
          ->capture_default_str();
      app.add_option("--steps", o->steps, "training steps measured")->capture_default_str();
      return [o] { return run(*o); };
    });
