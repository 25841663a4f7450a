// `loom train`: train a model from a JSON config (configs/*.json); every config field is also a
// flag (--lr 1e-3) that overrides the file (dashes or underscores: --grad-accum = --grad_accum).
// --resume continues from a checkpoint; --resume auto continues the latest one if any (restarts).
// --init_from starts from pretrained weights (a Hugging Face GPT-2 directory or a Loom
// checkpoint): parameters only, step 0, a fresh optimizer; a checkpoint to resume takes
// precedence (--resume auto after a restart).
// Data parallel: `--nproc N` relaunches this command as N local ranks (loom launch, shm
// backend); under `loom launch` or mpirun the process trains as its rank of the job. `--tp T`
// splits each model replica over T of the ranks (tensor parallelism; dp = ranks / T).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "command_registry.hpp"
#include "device_option.hpp"
#include "loom/comm/communicator.hpp"
#include "loom/comm/environment.hpp"
#include "loom/comm/transport.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/trace.hpp"
#include "loom/data/data_tokenizer.hpp"
#include "loom/launch/capacity.hpp"
#include "loom/launch/launcher.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/planner/auto_layout.hpp"
#include "loom/train/checkpoint.hpp"
#include "loom/train/pretrained.hpp"
#include "loom/train/ps_training.hpp"
#include "loom/train/run_memory.hpp"
#include "loom/config/train_config.hpp"
#include "loom/train/trace_file.hpp"
#include "loom/train/trainer.hpp"

namespace {

struct Options {
  std::string config;
  std::string resume;
  std::string init_from;
  std::string trace;
  int max_restarts = 0;
  bool oversubscribe = false;
  std::map<std::string, std::string> values;  // field name -> flag text, for every field
  std::map<std::string, CLI::Option*> flags;
};

// This command's arguments without --nproc: what each launched rank runs.
std::vector<std::string> rank_args(const Options& o, const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> args = {"train"};
  if (!o.config.empty()) args.insert(args.end(), {"--config", o.config});
  if (!o.resume.empty()) args.insert(args.end(), {"--resume", o.resume});
  if (!o.init_from.empty()) args.insert(args.end(), {"--init_from", o.init_from});
  if (!o.trace.empty()) args.insert(args.end(), {"--trace", o.trace});
  for (const auto& [name, text] : overrides)
    if (name != "nproc" && name != "min_nproc") args.insert(args.end(), {"--" + name, text});
  return args;
}

// --parallel auto: the planner's best layout for nproc ranks at the global batch of a plain
// data-parallel run, written into the config and into the flags every rank gets.
void choose_layout(loom::RunConfig& config, std::map<std::string, std::string>& overrides) {
  loom::TrainConfig& t = config.train;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const loom::planner::PlanRequest req = loom::planner::auto_request(config, cores);
  const int threads = t.threads > 0 ? t.threads : std::max(1, cores / t.nproc);
  const auto costs = loom::planner::calibrate_kernel_costs(config.model, t.seq_len, threads);
  const loom::planner::Prediction p = loom::planner::best_trainable_layout(req, costs, {});
  for (const auto& [name, value] : loom::planner::apply_layout(t, p.layout, req.global_batch))
    overrides[name] = value;
  std::printf("parallel auto: %s, batch_size %d per data-parallel rank | predicted %.3f s/step, "
              "bubble %.1f%%, %.2f GB per rank\n",
              p.layout.describe().c_str(), t.batch_size, p.step_s, p.bubble * 100, p.memory_gb);
  if (t.pp == 1 && t.rebalance) {  // no stages to re-partition
    t.rebalance = false;
    overrides["rebalance"] = "false";
    std::printf("parallel auto: no pipeline stages, so --rebalance has nothing to do\n");
  }
  std::fflush(stdout);
}

// --nproc MIN:MAX (elastic, as torchrun's --nnodes MIN:MAX): nproc MAX and min_nproc MIN.
void split_elastic_nproc(std::map<std::string, std::string>& overrides) {
  const auto it = overrides.find("nproc");
  if (it == overrides.end()) return;
  const size_t colon = it->second.find(':');
  if (colon == std::string::npos) return;
  const std::string min = it->second.substr(0, colon), max = it->second.substr(colon + 1);
  char* end = nullptr;
  const long min_value = std::strtol(min.c_str(), &end, 10);
  LOOM_CHECK(!min.empty() && *end == '\0' && min_value >= 1 && !max.empty(), "--nproc ", it->second,
             ": expected N or MIN:MAX with 1 <= MIN <= MAX, e.g. 2:4");
  overrides["min_nproc"] = min;
  it->second = max;
}

// Elastic restarts on fewer ranks keep the global batch batch_size x dp x grad_accum by raising
// grad_accum: the command of each world size the job can run on.
loom::launch::Elastic elastic_launch(const Options& o, const loom::TrainConfig& t,
                                     std::map<std::string, std::string> overrides) {
  loom::launch::Elastic e;
  e.min_nproc = t.min_nproc;
  e.command_for = [=, &o](int n, std::string* why) mutable -> std::optional<loom::launch::ElasticCommand> {
    const int replica = t.tp * t.pp;
    if (n % replica != 0) {
      *why = loom::detail::concat("tp x pp = ", replica, " ranks per replica does not divide it");
      return std::nullopt;
    }
    const int64_t sequences = static_cast<int64_t>(t.nproc / replica) * t.grad_accum;  // x batch_size
    const int dp = n / replica;
    if (sequences % dp != 0) {
      *why = loom::detail::concat("its ", dp, " data-parallel ranks cannot share the global batch of ",
                                  sequences * t.batch_size, " sequences in whole micro-batches of ",
                                  t.batch_size);
      return std::nullopt;
    }
    overrides["grad_accum"] = std::to_string(sequences / dp);
    return loom::launch::ElasticCommand{
        rank_args(o, overrides),
        loom::detail::concat("grad_accum ", sequences / dp, " keeps the global batch of ",
                             sequences * t.batch_size, " sequences")};
  };
  return e;
}

// LOOM_FAULT_RANK_START=<world rank>[:<first restart>]: that rank fails to start (from that
// restart on; default 0), as a rank whose machine part is broken would: the elastic drill.
void start_fault_drill(const loom::comm::RankEnvironment& env) {
  const char* v = std::getenv("LOOM_FAULT_RANK_START");
  if (v == nullptr) return;
  int rank = -1, from = 0;
  char tail = 0;
  const int got = std::sscanf(v, "%d:%d%c", &rank, &from, &tail);
  LOOM_CHECK((got == 1 || got == 2) && rank >= 0 && from >= 0, "LOOM_FAULT_RANK_START=", v,
             ": expected <world rank>[:<first restart>], e.g. 3:1");
  if (env.rank == rank && env.restart_count >= from)
    LOOM_FAIL("LOOM_FAULT_RANK_START: rank ", rank, " fails to start (restart ", env.restart_count, ")");
}

// This rank joins its job's world. Its own failure to get there is a start failure (the elastic
// launcher goes on without it); a peer that never came stays a peer failure.
std::unique_ptr<loom::comm::Communicator> join_world(const loom::comm::RankEnvironment& env) {
  try {
    start_fault_drill(env);
    return loom::comm::communicator_from_env();
  } catch (const loom::comm::PeerFailure&) {
    throw;
  } catch (const loom::Error& e) {
    if (env.launcher == loom::comm::Launcher::None) throw;
    throw loom::comm::RankStartFailure(e.what());
  }
}

int run(const Options& o) {
  std::map<std::string, std::string> overrides;
  for (const auto& [name, opt] : o.flags)
    if (opt->count() > 0) overrides[name] = o.values.at(name);
  split_elastic_nproc(overrides);
  // The straggler knob may come from the environment too (a flag wins).
  if (const char* straggler = std::getenv("LOOM_STRAGGLER"); straggler && !overrides.count("straggler"))
    overrides["straggler"] = straggler;

  nlohmann::json j = loom::load_config_json(o.config);  // {} without --config
  loom::apply_overrides(j, overrides);
  std::string checkpoint_dir, origin = o.config.empty() ? "command line" : o.config;
  std::string path = o.resume;
  if (path == "latest" || path == "auto") {
    const auto train = j.is_object() ? j.value("train", nlohmann::json::object()) : nlohmann::json();
    LOOM_CHECK(train.is_object() && train.contains("out_dir") && train["out_dir"].is_string(),
               "--resume ", path, " needs out_dir (in the --config file or as --out_dir)");
    const std::string latest = train["out_dir"].get<std::string>() + "/latest";
    // auto (torchrun-elastic style): continue the latest checkpoint if there is one, else start.
    path = path == "auto" && !std::filesystem::exists(latest) ? "" : latest;
  }
  if (!path.empty()) {
    checkpoint_dir = loom::resolve_checkpoint(path);
    if (o.config.empty()) {  // without --config, a resumed run starts from the checkpoint's own
      j = loom::read_checkpoint_state(checkpoint_dir).config;
      // The world and its layout are not part of the run: it resumes on as many ranks, split as
      // this command asks.
      if (j.is_object() && j.contains("train") && j["train"].is_object())
        for (const char* key : {"nproc", "min_nproc", "tp", "pp", "micro_batches", "schedule", "parallel",
                                "partition", "rebalance", "ps", "ps_mode", "staleness", "straggler"})
          j["train"].erase(key);
      loom::apply_overrides(j, overrides);
      origin = "config of checkpoint " + checkpoint_dir;
    }
  }
  loom::RunConfig config = loom::parse_run_config(j, origin);
  LOOM_CHECK(o.init_from.empty() || o.resume.empty() || o.resume == "auto",
             "give --init_from (new weights, step 0) or --resume ", o.resume, " (a run to continue), not both");
  if (!o.init_from.empty() && checkpoint_dir.empty()) {  // refused before any rank starts
    const auto pretrained = loom::read_pretrained(o.init_from);
    loom::check_pretrained_shape(pretrained, config.model);
    loom::check_same_tokenizer(pretrained.tokenizer, pretrained.dir, config.train.data_dir);
  }
  if (!checkpoint_dir.empty()) {
    const auto state = loom::read_checkpoint_state(checkpoint_dir);
    loom::check_same_tokenizer(state.tokenizer, checkpoint_dir, config.train.data_dir);
    const int64_t done = state.step;
    // --resume auto (a restarted or re-run job) whose work is already done: say so, succeed.
    if (o.resume == "auto" && config.train.max_steps <= done) {
      std::cout << "loom train: " << checkpoint_dir << " is already at step " << done
                << " (--max_steps " << config.train.max_steps << "): nothing left to train" << std::endl;
      return 0;
    }
    LOOM_CHECK(config.train.max_steps > done, "--max_steps ", config.train.max_steps, ": checkpoint ",
               checkpoint_dir, " is already at step ", done,
               ", so there is nothing left to train (raise --max_steps to continue)");
  }
  const loom::comm::RankEnvironment env = loom::comm::detect_environment();
  if (config.train.parallel == loom::LayoutChoice::kAuto) {
    LOOM_CHECK(env.launcher == loom::comm::Launcher::None,
               "--parallel auto picks the layout before launching the ranks (loom train --nproc N "
               "--parallel auto); under another launcher pass --tp, --pp, --micro_batches");
    choose_layout(config, overrides);
    config = loom::parse_run_config(loom::to_json(config), origin);  // the chosen layout, validated
  }
  // A --tp, --pp or --ep that does not fit the world is refused before anything starts.
  const bool launching = env.launcher == loom::comm::Launcher::None;
  loom::parallel::mesh_shape(launching ? config.train.nproc : env.world_size, config.train.tp,
                             config.train.pp, config.train.ep);
  loom::check_ps_world(config.train, launching ? config.train.nproc : env.world_size);
  // A job this host cannot hold (too many ranks, or more memory than it has) is refused here.
  if (launching && !o.oversubscribe) {
    const loom::launch::HostCapacity host = loom::launch::host_capacity();
    const int threads = config.train.threads > 0 ? config.train.threads
                                                 : std::max(1, host.cores / config.train.nproc);
    loom::launch::check_job_fits(config.train.nproc, loom::planned_bytes_per_rank(config, threads), host);
  }
  LOOM_CHECK(o.max_restarts == 0 || launching,
             "--max_restarts: this process is already a rank of a job (", loom::comm::name(env.launcher),
             "); restarts are its launcher's to make");
  // Ranks (and restarts) are the local launcher's: this command runs again under it.
  if ((config.train.nproc > 1 || o.max_restarts > 0) && launching) {
    loom::launch::LaunchOptions launch;
    launch.max_restarts = o.max_restarts;
    if (config.train.min_nproc > 0) launch.elastic = elastic_launch(o, config.train, overrides);
    // Async and ssp parameter servers drop a lost worker and go on (sync waits for every one).
    if (config.train.ps > 0 && config.train.ps_mode != loom::ps::Mode::kSync)
      launch.expendable_from = config.train.ps;
    return loom::launch::launch_local(config.train.nproc, rank_args(o, overrides), launch);
  }
  if (env.rank == 0 && env.restart_count > 0)
    std::cout << "restart " << env.restart_count << ": "
              << (checkpoint_dir.empty() ? "no checkpoint yet, starting from step 0"
                                         : "resuming from " + checkpoint_dir)
              << std::endl;
  // Ranks on one host share its cores: by default each takes its part rather than all of them.
  int threads = config.train.threads;
  if (threads == 0 && env.local_world_size > 1)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / env.local_world_size);
  loom::set_num_threads(threads);

  const auto comm = join_world(env);
  if (comm->rank() == 0 && comm->hosts() && comm->hosts()->count() > 1)
    std::cout << "comm: " << comm->size() << " ranks on " << comm->hosts()->count() << " hosts, "
              << (comm->hierarchical() ? "hierarchical" : "flat") << std::endl;
  if (!o.trace.empty()) loom::trace::enable(comm->rank());
  if (config.train.ps > 0) {  // parameter servers: a strategy of its own (train/ps_training.hpp)
    loom::train_with_parameter_servers(config, *comm, checkpoint_dir, o.init_from);
    return 0;
  }
  loom::Trainer trainer(config, *comm);
  if (!checkpoint_dir.empty()) trainer.resume(checkpoint_dir);
  else if (!o.init_from.empty()) trainer.init_from(o.init_from);
  trainer.run();
  if (!o.trace.empty()) {
    const size_t n = loom::write_trace(comm.get(), o.trace);
    if (comm->rank() == 0) std::cout << "trace: " << n << " entries in " << o.trace << std::endl;
  }
  return 0;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "train", "Train a GPT model (every config field is also a --flag)", [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      loom::cli::add_device_option(app, "train");
      app.add_option("--config", o->config, "JSON config file: {\"model\": {..}, \"train\": {..}}");
      app.add_option("--resume", o->resume,
                     "checkpoint to continue from: a step_XXXXXX directory, a `latest` file, "
                     "`latest` (<out_dir>/latest), or `auto` (<out_dir>/latest if it exists, else "
                     "start afresh: for restarts)");
      app.add_option("--init_from", o->init_from,
                     "start from these weights: a Hugging Face GPT-2 directory (config.json + "
                     "model.safetensors or its shards) or a Loom checkpoint; step 0, fresh optimizer");
      app.add_option("--max_restarts", o->max_restarts,
                     "restart all ranks (or the one process) up to this many times after a "
                     "failure (use with --resume auto)");
      app.add_flag("--oversubscribe", o->oversubscribe,
                   "start the ranks even when they are more than the cores can run or their "
                   "planned memory exceeds the available memory");
      app.add_option("--trace", o->trace,
                     "write a Chrome/Perfetto timeline of every rank (compute, communication, "
                     "checkpoints) to this JSON file");
      for (const auto& f : loom::config_fields()) {
        o->flags[f.name] = app.add_option("--" + f.name, o->values[f.name], f.help)
                               ->type_name(f.type)
                               ->default_str(f.default_text)
                               ->group(f.section == "model" ? "Model fields" : "Train fields");
      }
      app.footer(
          "Data parallel: batch_size is per data-parallel rank; the global batch is batch_size x "
          "ranks / tp x grad_accum. With data/fortunes from scripts/demo.sh (or any loom tokenize output):\n"
          "  loom train --config configs/tiny.json --data_dir data/fortunes --nproc 4          (4 local "
          "ranks, shared memory)\n"
          "  mpirun -np 4 loom train --config configs/tiny.json --data_dir data/fortunes     (Open MPI, "
          "one or many hosts)\n"
          "  loom train --config configs/tiny.json --data_dir data/fortunes --nproc 4 --tp 2 (2 "
          "data-parallel replicas, each split over 2 ranks)");
      return [o] { return run(*o); };
    });
