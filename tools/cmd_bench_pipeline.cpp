// `loom bench pipeline --pp 2 --micro_batches 4,8,16 --schedule gpipe,1f1b,zb1p`: measured step
// time and bubble of each pipeline schedule against theory and the simulator, with peak
// activation memory per stage (see bench/pipeline_bench.hpp).
#include <fstream>
#include <memory>
#include <sstream>

#include "bench/pipeline_bench.hpp"
#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"

namespace {

struct Options {
  loom::pipeline::PipelineBenchOptions bench;
  std::string pp = "2", micro_batches = "4,8,16", schedules = "gpipe,1f1b,zb1p";
  std::string worker_out;  // internal: set when launched as a measurement's rank
};

std::vector<int> parse_ints(const std::string& flag, const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    const long x = std::strtol(item.c_str(), &end, 10);
    LOOM_CHECK(!item.empty() && *end == '\0' && x > 0 && x < (1 << 20), flag,
               ": expected positive integers separated by commas, got '", s, "'");
    out.push_back(static_cast<int>(x));
  }
  LOOM_CHECK(!out.empty(), flag, ": empty list");
  return out;
}

int run(Options& o) {
  o.bench.pp = parse_ints("--pp", o.pp);
  o.bench.micro_batches = parse_ints("--micro_batches", o.micro_batches);
  o.bench.schedules.clear();
  std::stringstream ss(o.schedules);
  for (std::string s; std::getline(ss, s, ',');) o.bench.schedules.push_back(s);
  LOOM_CHECK(o.bench.width > 0 && o.bench.layers > 0 && o.bench.rows > 0 && o.bench.steps > 0 &&
                 o.bench.warmup >= 0 && o.bench.virtual_stages >= 1,
             "bench pipeline: --width, --layers, --rows, --steps, --virtual_stages must be > 0");
  if (o.worker_out.empty()) {
    loom::pipeline::run_pipeline_bench(o.bench, "/proc/self/exe");
    return 0;
  }
  loom::set_num_threads(1);
  const auto comm = loom::comm::communicator_from_env();
  const auto rows = loom::pipeline::run_pipeline_bench_rank(*comm, o.bench);
  if (comm->rank() == 0) std::ofstream(o.worker_out) << loom::pipeline::to_json_line(rows) << "\n";
  return 0;
}

const bool registered = loom::cli::register_command(
    "bench pipeline",
    "Pipeline schedules: measured step time and bubble vs theory and the simulator, peak "
    "activation memory per stage (GPT stages or a dense-layer model, one thread per rank)",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--pp", o->pp, "pipeline depths, comma-separated (one job of pp ranks each)")->capture_default_str();
      app.add_option("--micro_batches", o->micro_batches,
                     "micro-batches per step, comma-separated")->capture_default_str();
      app.add_option("--schedule", o->schedules, "gpipe, 1f1b, interleaved, zb1p; comma-separated")->capture_default_str();
      app.add_option("--virtual_stages", o->bench.virtual_stages,
                     "chunks per rank for interleaved")->capture_default_str();
      app.add_option("--config", o->bench.config, "GPT stages of this config's model (default: a dense-layer model)");
      app.add_option("--batch_size", o->bench.batch, "GPT: sequences per step")->capture_default_str();
      app.add_option("--seq_len", o->bench.seq, "GPT: tokens per sequence")->capture_default_str();
      app.add_option("--width", o->bench.width, "dense layer width")->capture_default_str();
      app.add_option("--layers", o->bench.layers, "dense layers in the model")->capture_default_str();
      app.add_option("--rows", o->bench.rows, "rows per step (split into the micro-batches)")->capture_default_str();
      app.add_option("--steps", o->bench.steps, "timed steps")->capture_default_str();
      app.add_option("--warmup", o->bench.warmup, "untimed steps first")->capture_default_str();
      app.add_option("--worker_out", o->worker_out, "(internal) result file of a launched rank")->group("");
      return [o] { return run(*o); };
    });

}  // namespace
