// `loom bench ddp --config C --nproc N [--pp P] [--bucket_mb 1,5,25]`: data-parallel step time on
// P (one replica) and on N local ranks at equal per-rank batch (one thread per rank), the share of
// all-reduce time hidden behind backward (under a pipeline too), and scaling efficiency (see
// bench/ddp_bench.hpp).
#include <fstream>
#include <memory>
#include <sstream>

#include "bench/ddp_bench.hpp"
#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/config/train_config.hpp"

namespace {

struct Options {
  loom::parallel::DdpBenchOptions bench;
  std::string bucket_list = "25";
  std::string worker_out;  // internal: set when launched as a measurement's rank
};

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    const double x = std::strtod(item.c_str(), &end);
    LOOM_CHECK(!item.empty() && *end == '\0' && x > 0, "--bucket_mb: expected positive numbers separated by commas, got '", s, "'");
    out.push_back(x);
  }
  return out;
}

int run(Options& o) {
  o.bench.bucket_mb = parse_list(o.bucket_list);
  if (o.worker_out.empty()) {
    loom::parallel::run_ddp_bench(o.bench, "/proc/self/exe");
    return 0;
  }
  loom::set_num_threads(1);
  nlohmann::json j = loom::load_config_json(o.bench.config);
  LOOM_CHECK(j.is_object() && j.contains("model"), o.bench.config, ": no \"model\" section");
  loom::GPTConfig model = j["model"].get<loom::GPTConfig>();
  model.validate();
  const auto comm = loom::comm::communicator_from_env();
  const auto r = loom::parallel::run_ddp_bench_rank(*comm, model, o.bench, o.bench.bucket_mb.front());
  if (comm->rank() == 0) std::ofstream(o.worker_out) << loom::parallel::to_json_line(r) << "\n";
  return 0;
}

const bool registered = loom::cli::register_command(
    "bench ddp",
    "Data-parallel scaling: step time on 1 vs N local ranks at equal per-rank batch, all-reduce "
    "overlap with backward, efficiency",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--config", o->bench.config, "config file (its \"model\" section is used)")->required();
      app.add_option("--nproc,-n", o->bench.nproc, "ranks to compare with one replica (pp ranks)")->capture_default_str();
      app.add_option("--pp", o->bench.pp, "pipeline stages (1F1B); nproc / pp data-parallel replicas")
          ->capture_default_str();
      app.add_option("--micro_batches", o->bench.micro_batches,
                     "under --pp > 1: micro-batches per batch; 0: pp")
          ->capture_default_str();
      app.add_option("--batch_size", o->bench.batch, "sequences per rank per step")->capture_default_str();
      app.add_option("--seq_len", o->bench.seq, "sequence length; 0: context_len")->capture_default_str();
      app.add_option("--steps", o->bench.steps, "timed steps")->capture_default_str();
      app.add_option("--warmup", o->bench.warmup, "untimed steps first")->capture_default_str();
      app.add_option("--bucket_mb", o->bucket_list,
                     "gradient bucket size(s) in MiB, comma-separated for a sweep")
          ->capture_default_str();
      app.add_option("--worker_out", o->worker_out, "(internal) result file of a launched rank")
          ->group("");
      return [o] { return run(*o); };
    });

}  // namespace
