// `loom memory`: predicted bytes per rank of a training step, by component (parallel/planner/memory_model),
// beside the peak RSS measured while running real steps of that configuration. `--nproc N`
// relaunches the command as N local ranks (shm backend), each measuring itself: each builds the
// trainer of `loom train` (train/trainer.hpp) for the flags, on a scratch directory of random
// tokens, and runs its steps (the mesh, tp slices, pipeline stages with the partition timed as
// the trainer times it, schedule, data parallelism, optimizer). A configuration whose predicted
// ranks do not fit this machine's available memory, or that `loom train` does not run, is
// predicted only (blocks split evenly over the stages), and the output says why it was not
// measured.
#include <malloc.h>
#include <omp.h>

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "command_registry.hpp"
#include "loom/comm/communicator.hpp"
#include "loom/comm/environment.hpp"
#include "loom/config/parallel_plan.hpp"
#include "loom/config/train_config.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/rng.hpp"
#include "loom/data/token_shard.hpp"
#include "loom/launch/launcher.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/pipeline/pipeline_training.hpp"
#include "loom/parallel/planner/memory_model.hpp"
#include "loom/train/trainer.hpp"

namespace {

struct Options {
  std::string config;
  int batch = 4, seq = 256, threads = 0, nproc = 0, zero = 0, steps = 0;
  int tp = 1, pp = 1, micro_batches = 0;
  double bucket_mb = 25;
  std::string precision = "f32";
  std::string recompute = "none";
  std::string schedule = "1f1b";
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
  return {"memory", "--config", o.config, "--batch_size", std::to_string(o.batch), "--seq_len",
          std::to_string(o.seq), "--threads", std::to_string(o.threads), "--zero",
          std::to_string(o.zero), "--steps", std::to_string(o.steps), "--bucket_mb",
          std::to_string(o.bucket_mb), "--precision", o.precision, "--recompute", o.recompute,
          "--tp", std::to_string(o.tp), "--pp", std::to_string(o.pp), "--micro_batches",
          std::to_string(o.micro_batches), "--schedule", o.schedule, "--nproc",
          std::to_string(o.nproc)};
}

// /proc/meminfo's MemAvailable in bytes (0 when unknown).
double available_bytes() {
  std::ifstream f("/proc/meminfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("MemAvailable:", 0) == 0) return std::stod(line.substr(13)) * 1024;
  return 0;
}

// Steps measured: --steps, or enough that every slot of a pipeline lane's shm ring has carried a
// message (one per micro-batch each way and step; they take the slots in turn, and a long run's
// lanes have used every slot, as the prediction assumes), at least 2.
int steps_measured(const Options& o, const loom::MemoryOptions& mo) {
  if (o.steps > 0) return o.steps;
  const int m = o.micro_batches > 0 ? o.micro_batches : o.pp;
  return o.pp > 1 ? std::max(2, (mo.shm_slots + m - 1) / m) : 2;
}

// The run `loom train` would make of the flags (validated as it validates them), training on
// `data_dir`: no evaluation, samples, checkpoints or log; `partition`: the blocks per stage.
loom::RunConfig train_config(const Options& o, const loom::MemoryOptions& mo, int world,
                             const std::string& data_dir, const std::string& partition) {
  loom::RunConfig rc;
  rc.model = mo.model;
  loom::TrainConfig& t = rc.train;
  t.data_dir = t.out_dir = data_dir;
  t.batch_size = o.batch;
  t.seq_len = t.stride = o.seq;
  t.max_steps = steps_measured(o, mo);
  t.warmup_steps = 0;
  t.eval_freq = 0;
  t.sample_freq = -1;
  t.log_file = "";
  t.nproc = world;
  t.threads = o.threads;
  t.precision = loom::kernels::parse_precision(o.precision, "--precision");
  t.zero = o.zero;
  t.bucket_mb = o.bucket_mb;
  t.tp = o.tp;
  t.pp = o.pp;
  t.micro_batches = o.micro_batches;
  t.schedule = mo.schedule;
  t.recompute = mo.recompute;
  t.partition = partition;
  return loom::parse_run_config(loom::to_json(rc), "loom memory");
}

// Why `loom train` cannot run the flags' layout ("" when it can).
std::string not_trainable(const Options& o, const loom::MemoryOptions& mo, int world) {
  if (mo.model.vocab_size < 257)
    return "its random tokens are bytes, and vocab_size " + std::to_string(mo.model.vocab_size) +
           " < 257";
  try {
    train_config(o, mo, world, "(scratch)", "");
  } catch (const loom::Error& e) {
    return std::string("loom train refuses it: ") + e.what();
  }
  return "";
}

// A directory of random byte tokens for the measured steps (meta.json names the byte
// tokenizer), enough for `windows` windows of `seq` tokens; removed with the object.
struct ScratchData {
  std::string dir;
  ScratchData(int windows, int seq) {
    std::string pattern = (std::filesystem::temp_directory_path() / "loom-memory-XXXXXX").string();
    LOOM_CHECK(::mkdtemp(pattern.data()) != nullptr, "memory: cannot create a directory from ",
               pattern);
    dir = pattern;
    std::ofstream(dir + "/meta.json") << R"({"tokenizer": "byte"})";
    loom::Rng rng(7);
    std::vector<uint16_t> tokens(static_cast<size_t>(windows) * seq + 1);
    for (auto& t : tokens) t = static_cast<uint16_t>(rng.below(256));
    loom::write_shard(dir + "/memory_train.bin", tokens);
  }
  ~ScratchData() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

// One forward and backward of a one-block copy of this rank's shard (its ends and tp slice)
// on one micro-batch, with the run's threads, then freed: the matrix library's
// state for the step's products (the kernels oneDNN generates on first use, its primitives
// and per-thread scratchpads: a one-time cost of the library, like loading it) is then part of
// the process measured before the model. The copy does not communicate.
// It runs in f32 even under bf16: the per-thread bf16 operand buffers are predicted (bf16
// operand scratch), so the warm-up must not create them.
void warm_up_kernels(const Options& o, const loom::MemoryOptions& mo, const loom::ModelShard& shard) {
  loom::ModelShard one = shard;
  one.last_block = one.first_block + 1;
  one.chunks.clear();
  loom::ShapesOnlyTpGroup group(shard.tp_rank, shard.tp_size);
  loom::GPT copy_model(mo.model, one, o.tp > 1 ? &group : nullptr);
  loom::ModelRunner<float> copy(copy_model, {0, mo.recompute, /*split_backward=*/false});
  const int rows = o.batch / (o.pp > 1 ? (o.micro_batches > 0 ? o.micro_batches : o.pp) : 1);
  const size_t n = static_cast<size_t>(rows) * o.seq;
  std::vector<int32_t> tokens(n, 0);
  std::vector<float> activation(n * mo.model.d_model, 0.0f);
  loom::Rng rng(7);
  const int32_t* targets = one.has_head ? tokens.data() : nullptr;
  if (one.has_embedding)
    copy.forward(tokens.data(), targets, rows, o.seq, /*train=*/true, &rng);
  else
    copy.forward_activation(activation.data(), targets, rows, o.seq, /*train=*/true, &rng);
  if (one.has_head)
    copy.backward(1.0f);
  else
    copy.backward_from_output(activation.data());
}

// The mesh coordinates of every world rank, as parallel::Mesh places them.
std::vector<loom::parallel::MeshCoord> mesh_coords(loom::comm::Communicator& world,
                                                   const loom::parallel::MeshShape& shape) {
  std::vector<int> positions(world.size());
  if (world.hosts() != nullptr)
    positions = loom::parallel::mesh_positions(*world.hosts());
  else
    std::iota(positions.begin(), positions.end(), 0);
  std::vector<loom::parallel::MeshCoord> coords;
  for (int p : positions) coords.push_back(loom::parallel::mesh_coord(shape, p));
  return coords;
}

// The breakdown of every pipeline stage's prediction, one column per stage.
void print_breakdown(const std::vector<std::vector<loom::MemoryItem>>& stages, double runtime) {
  const double MiB = 1024.0 * 1024.0;
  // Every item of any stage, in order of first appearance, kept next to its group's others.
  std::vector<std::string> names, groups;
  for (const auto& items : stages)
    for (const auto& i : items) {
      if (std::find(names.begin(), names.end(), i.name) != names.end()) continue;
      const auto last = std::find(groups.rbegin(), groups.rend(), i.group);
      const auto at = last == groups.rend() ? groups.size() : groups.rend() - last;
      names.insert(names.begin() + static_cast<std::ptrdiff_t>(at), i.name);
      groups.insert(groups.begin() + static_cast<std::ptrdiff_t>(at), i.group);
    }
  if (stages.size() > 1) {
    std::printf("%-62s", "predicted per rank of");
    for (size_t s = 0; s < stages.size(); ++s) std::printf("  stage %-5zu", s);
    std::printf("\n");
  }
  std::string group;
  for (size_t k = 0; k < names.size(); ++k) {
    if (groups[k] != group) std::printf("%s:\n", (group = groups[k]).c_str());
    std::printf("  %-60s", names[k].c_str());
    for (const auto& items : stages) {
      double b = 0;
      for (const auto& i : items)
        if (i.name == names[k]) b = i.bytes;
      std::printf(" %8.1f MiB", b / MiB);
    }
    std::printf("\n");
  }
  std::printf("  %-60s %8.1f MiB (rank 0)\n", "process and libraries before the model (measured)",
              runtime / MiB);
}

// Whether this machine measures `nproc` ranks of the flags' layout: `loom train` runs it and the
// predicted ranks fit the available memory. When not, prints the prediction (the blocks split
// evenly over the stages) and why nothing is measured.
bool measurable_here(const Options& o, loom::MemoryOptions mo, int nproc,
                     loom::kernels::MatmulPrecision requested) {
  mo.precision = loom::kernels::resolve_precision(requested);
  mo.threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  mo.world = nproc / (o.tp * o.pp);
  std::vector<std::vector<loom::MemoryItem>> stages;
  double worst = 0;
  for (int s = 0; s < o.pp; ++s) {
    mo.stage = s;
    stages.push_back(loom::predict_memory(mo));
    worst = std::max(worst, loom::total_bytes(stages.back()));
  }
  const double GiB = 1024.0 * 1024.0 * 1024.0;
  const double available = available_bytes();
  std::string why = not_trainable(o, mo, nproc);
  // A measured run needs the prediction plus the process itself (and the page cache its
  // neighbours use): a margin of a quarter.
  if (why.empty() && available > 0 && worst * nproc > 0.75 * available)
    why = loom::detail::concat("that is more than this machine can hold (",
                               static_cast<int>(available / GiB * 10) / 10.0,
                               " GiB available; a measured run is limited to 3/4 of it)");
  if (why.empty()) return true;
  std::printf("memory per rank: %lld params, batch %d x seq %d, %s matmuls, %d rank(s) = dp %d x "
              "tp %d x pp %d, ZeRO-%d, recompute %s (predicted only%s)\n",
              static_cast<long long>(mo.model.num_params()), o.batch, o.seq,
              loom::kernels::precision_name(mo.precision), nproc, mo.world, o.tp, o.pp, o.zero,
              loom::recompute_name(mo.recompute), o.pp > 1 ? "; blocks split evenly" : "");
  print_breakdown(stages, status_bytes("VmRSS"));
  std::printf("predicted %.1f GiB per rank (largest stage), %d rank(s): %.1f GiB\n", worst / GiB,
              nproc, worst * nproc / GiB);
  std::printf("not measured: %s\n", why.c_str());
  std::fflush(stdout);
  return false;
}

int run(const Options& o) {
  LOOM_CHECK(o.nproc >= 0, "--nproc must be >= 1 (or 0: tp x pp), got ", o.nproc);
  LOOM_CHECK(o.zero >= 0 && o.zero <= 3, "--zero must be 0, 1, 2 or 3, got ", o.zero);
  LOOM_CHECK(o.steps >= 0, "--steps must be >= 1 (or 0: enough to fill the pipeline lanes), got ",
             o.steps);
  LOOM_CHECK(o.batch >= 1, "--batch_size must be >= 1, got ", o.batch);
  const loom::GPTConfig cfg = loom::load_model_config(o.config);
  LOOM_CHECK(o.seq >= 1 && o.seq <= cfg.context_len, "--seq_len must be in [1, ", cfg.context_len,
             "], got ", o.seq);
  const auto requested = loom::kernels::parse_precision(o.precision, "--precision");
  const loom::Recompute recompute = loom::parse_recompute(o.recompute);
  loom::MemoryOptions mo;
  mo.model = cfg;
  mo.batch = o.batch;
  mo.seq = o.seq;
  mo.zero = o.zero;
  mo.bucket_mb = o.bucket_mb;
  mo.recompute = recompute;
  mo.tp = o.tp;
  mo.pp = o.pp;
  mo.micro_batches = o.micro_batches;
  mo.schedule = loom::pipeline::parse_schedule_kind(o.schedule);
  loom::check_memory_layout(mo);  // bad --tp, --pp, --micro_batches fail before any launch
  const int nproc = o.nproc > 0 ? o.nproc : o.tp * o.pp;
  const loom::parallel::MeshShape shape = loom::parallel::mesh_shape(nproc, o.tp, o.pp);
  LOOM_CHECK(!(recompute == loom::Recompute::kFull &&
               mo.schedule == loom::pipeline::ScheduleKind::ZeroBubbleH1 && o.pp > 1),
             "--recompute full cannot run with --schedule zb1p (its W needs every layer input)");
  const auto env = loom::comm::detect_environment();
  if (env.launcher == loom::comm::Launcher::None && !measurable_here(o, mo, nproc, requested))
    return 0;
  if (nproc > 1 && env.launcher == loom::comm::Launcher::None) {
    Options ranks = o;
    ranks.nproc = nproc;
    return loom::launch::launch_local(nproc, rank_args(ranks), {});
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
  // The stages' blocks as the trainer times them (rank 0, on a model copy of its own), given to
  // the trainer so that the prediction has the same partition.
  const loom::pipeline::Partition partition =
      loom::pipeline::stage_partition(*comm, cfg, o.pp, o.seq, omp_get_max_threads());
  const auto coords = mesh_coords(*comm, shape);
  const loom::parallel::MeshCoord me = coords[comm->rank()];
  const ScratchData data(2 * o.batch * shape.dp, o.seq);
  const loom::RunConfig run_config = train_config(o, mo, world, data.dir, o.pp > 1 ? partition.blocks_text() : "");
  warm_up_kernels(o, mo, loom::pipeline::stage_shard(partition, me.pp, me.tp, o.tp));
  malloc_trim(0);  // what the set-up and the warm-up freed goes back to the system
  // Binary, libraries (with their state for the step's products), comm set-up: measured.
  const double runtime = status_bytes("VmRSS");
  const int steps = steps_measured(o, mo);
  double measured = 0;
  {
    loom::Trainer trainer(run_config, *comm);
    // The peak is measured from here: the trainer's model state is allocated, and what its set-up
    // freed (rank 0 times the stages again on a model copy) goes back first.
    malloc_trim(0);
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current VmRSS
    for (int s = 0; s < steps; ++s) trainer.step();
    measured = status_bytes("VmHWM");
  }

  mo.threads = omp_get_max_threads();
  mo.precision = precision;
  mo.world = shape.dp;
  if (o.pp > 1) mo.stage_first = partition.first;
  std::vector<std::vector<loom::MemoryItem>> stages;
  for (int s = 0; s < o.pp; ++s) {
    mo.stage = s;
    stages.push_back(loom::predict_memory(mo));
  }
  // Every rank's measured peak and start-up RSS, gathered on rank 0 (one slot per rank).
  std::vector<float> peaks(2 * static_cast<size_t>(world), 0.0f);
  const double MiB = 1024.0 * 1024.0;
  peaks[2 * comm->rank()] = static_cast<float>(measured / MiB);
  peaks[2 * comm->rank() + 1] = static_cast<float>(runtime / MiB);
  if (world > 1) comm->allreduce(peaks.data(), peaks.size());
  if (comm->rank() != 0) return 0;
  std::printf("%s\n", loom::make_parallel_plan(run_config, world).describe().c_str());
  std::printf("memory per rank: %lld params, batch %d x seq %d, %s matmuls, %d rank(s) = dp %d x "
              "tp %d x pp %d, ZeRO-%d, recompute %s, %d thread(s)",
              static_cast<long long>(cfg.num_params()), o.batch, o.seq,
              loom::kernels::precision_name(precision), world, mo.world, o.tp, o.pp, o.zero,
              loom::recompute_name(recompute), mo.threads);
  if (o.pp > 1) {
    std::printf(", schedule %s, %d micro-batches, blocks per stage", o.schedule.c_str(),
                o.micro_batches > 0 ? o.micro_batches : o.pp);
    for (int s = 0; s < o.pp; ++s) std::printf(" %d", partition.first[s + 1] - partition.first[s]);
    std::printf(", activation sets held at once per stage");
    for (int s = 0; s < o.pp; ++s) {
      mo.stage = s;
      std::printf(" %d", loom::activation_sets_in_flight(mo));
    }
  }
  std::printf("\n");
  print_breakdown(stages, runtime);
  for (int r = 0; r < world; ++r) {
    const loom::parallel::MeshCoord c = coords[r];
    const double predicted = loom::total_bytes(stages[c.pp]) / MiB + peaks[2 * r + 1];
    std::printf("rank %d (pp %d, dp %d, tp %d): predicted %.1f MiB | measured peak RSS %.1f MiB "
                "over %d step(s) | predicted / measured %.3f\n",
                r, c.pp, c.dp, c.tp, predicted, peaks[2 * r], steps, predicted / peaks[2 * r]);
  }
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
      app.add_option("--batch_size", o->batch, "sequences per rank")->capture_default_str();
      app.add_option("--seq_len", o->seq, "sequence length")->capture_default_str();
      app.add_option("--threads", o->threads, "threads per rank (0: default)")
          ->capture_default_str();
      app.add_option("--precision", o->precision, "matmul precision: f32 or bf16")
          ->capture_default_str();
      app.add_option("--nproc", o->nproc, "ranks (local, shm): dp x tp x pp; 0: tp x pp")
          ->capture_default_str();
      app.add_option("--zero", o->zero,
                     "ZeRO stage: 0, 1, 2 or 3 (predicted; measured where loom train runs it)")
          ->capture_default_str();
      app.add_option("--recompute", o->recompute, "activation recomputation: none, selective, full")
          ->capture_default_str();
      app.add_option("--bucket_mb", o->bucket_mb, "gradient bucket size (MiB)")
          ->capture_default_str();
      app.add_option("--steps", o->steps,
                     "training steps measured; 0: 2, or under --pp enough for every slot of the "
                     "pipeline lanes' shm rings to carry a message (as in a long run)")
          ->capture_default_str();
      app.add_option("--tp", o->tp, "tensor-parallel ranks (must divide n_head)")
          ->capture_default_str();
      app.add_option("--pp", o->pp, "pipeline stages")->capture_default_str();
      app.add_option("--micro_batches", o->micro_batches,
                     "under --pp > 1: micro-batches per batch (must divide it); 0: pp")
          ->capture_default_str();
      app.add_option("--schedule", o->schedule, "pipeline schedule: gpipe, 1f1b or zb1p")
          ->capture_default_str();
      return [o] { return run(*o); };
    });
