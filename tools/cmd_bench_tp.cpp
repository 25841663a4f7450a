// `loom bench tp --config C --tp 1,2 --batch_size 4 --seq_len 256 [--sequence_parallel]`:
// tensor-parallel step time, the time in tp collectives and the memory per rank for each tp size,
// and with --sequence_parallel each tp > 1 again with Megatron sequence parallelism (see
// bench/tp_bench.hpp).
#include <fstream>
#include <memory>
#include <sstream>

#include "bench/tp_bench.hpp"
#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/model/model_shard.hpp"
#include "loom/config/train_config.hpp"

namespace {

struct Options {
  loom::parallel::TpBenchOptions bench;
  std::string tp_list = "1,2";
  std::string worker_out;  // internal: set when launched as a measurement's rank
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    const long x = std::strtol(item.c_str(), &end, 10);
    LOOM_CHECK(!item.empty() && *end == '\0' && x >= 1 && x <= 64,
               "--tp: expected tp sizes in [1, 64] separated by commas, got '", s, "'");
    out.push_back(static_cast<int>(x));
  }
  return out;
}

loom::GPTConfig model_of(const std::string& config) {
  nlohmann::json j = loom::load_config_json(config);
  LOOM_CHECK(j.is_object() && j.contains("model"), config, ": no \"model\" section");
  loom::GPTConfig model = j["model"].get<loom::GPTConfig>();
  model.validate();
  return model;
}

int run(Options& o) {
  o.bench.tp = parse_list(o.tp_list);
  const loom::GPTConfig model = model_of(o.bench.config);
  const int seq = o.bench.seq > 0 ? o.bench.seq : model.context_len;
  for (int tp : o.bench.tp) {
    loom::check_tp_divides_heads(model, tp, "--tp");
    LOOM_CHECK(!o.bench.sequence_parallel || seq % tp == 0, "--sequence_parallel: seq_len ", seq,
               " must be divisible by --tp ", tp);
  }
  if (o.worker_out.empty()) {
    loom::parallel::run_tp_bench(o.bench, "/proc/self/exe");
    return 0;
  }
  loom::set_num_threads(o.bench.threads);
  const auto comm = loom::comm::communicator_from_env();
  const auto r = loom::parallel::run_tp_bench_rank(*comm, model, o.bench);
  if (comm->rank() == 0) std::ofstream(o.worker_out) << loom::parallel::to_json_line(r) << "\n";
  return 0;
}

const bool registered = loom::cli::register_command(
    "bench tp",
    "Tensor parallelism: step time, time in tp all-reduces and memory per rank for each tp size",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--config", o->bench.config, "config file (its \"model\" section is used)")->required();
      app.add_option("--tp", o->tp_list, "tp sizes to compare, comma-separated (the first is the "
                     "baseline of the memory ratios)")->capture_default_str();
      app.add_option("--batch_size", o->bench.batch, "sequences per step (shared by the tp ranks)")->capture_default_str();
      app.add_option("--seq_len", o->bench.seq, "sequence length; 0: context_len")->capture_default_str();
      app.add_option("--threads", o->bench.threads,
                     "threads in all, divided among the tp ranks; 0: the machine's")->capture_default_str();
      app.add_option("--steps", o->bench.steps, "timed steps")->capture_default_str();
      app.add_option("--warmup", o->bench.warmup, "untimed steps first")->capture_default_str();
      app.add_flag("--sequence_parallel", o->bench.sequence_parallel,
                   "also measure each tp > 1 with Megatron sequence parallelism (seq_len must be "
                   "divisible by tp)");
      app.add_option("--worker_out", o->worker_out, "(internal) result file of a launched rank")
          ->group("");
      return [o] { return run(*o); };
    });

}  // namespace
