// `loom plan --config C --nproc N [--mem_gb G] [--cores_per_rank K] [--ranks_per_host R
// --inter_host_gbps G]`: predicted step time,
// pipeline bubble and memory per rank for every dp x tp x pp layout (with schedules and
// micro-batch counts) of N ranks under every ZeRO stage and recompute mode (unless --zero and
// --recompute name one), best first (see loom/parallel/planner/planner.hpp). Kernel costs come
// from a 2-block model timed once per machine (scaled down for large models and extrapolated by
// FLOPs; cached, see calibration_cache.hpp), scaled to the cores of a rank. Progress goes to
// stderr, a line per phase.
// `--validate K` (or `--layouts 2x1x1,1x1x2:zb1p:4`) then trains K of the layouts for a few
// steps each on N local ranks and prints predicted beside measured step time
// (bench/plan_validation.hpp).
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <nlohmann/json.hpp>

#include "bench/plan_validation.hpp"
#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/core/timer.hpp"
#include "loom/parallel/planner/auto_layout.hpp"
#include "loom/parallel/planner/calibration_cache.hpp"
#include "loom/config/parallel_plan.hpp"
#include "loom/parallel/planner/planner.hpp"
#include "loom/config/train_config.hpp"

namespace {

struct Options {
  std::string config;
  int nproc = 1;
  double mem_gb = 0;
  int global_batch = 0;
  int seq = 0;
  int threads = 0;
  int top = 20;
  std::string recompute = "all";
  std::string zero = "all";
  double cores_per_rank = 0;
  double bucket_mb = 25;
  int ranks_per_host = 0;
  int validate = 0;
  bool baseline = true;
  bool recalibrate = false;
  std::string layouts;
  loom::planner::ValidationRun run;
  loom::planner::Bandwidths bw;
};

// "loom plan: <text>" on stderr (progress: stdout keeps the table).
void note(const std::string& text) {
  std::fprintf(stderr, "loom plan: %s\n", text.c_str());
  std::fflush(stderr);
}

// The threads a rank computes with: --threads, else as many as its cores (at most this
// machine's, where the calibration runs).
int req_threads(const Options& o, const loom::planner::PlanRequest& req) {
  if (o.threads > 0) return o.threads;
  const int here = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return std::clamp(static_cast<int>(req.cores_per_rank), 1, here);
}

// The cores of one rank: --cores_per_rank, else this machine's shared by the ranks when they fit
// on it (or run on it: --validate), else (said on stderr) as many as this machine has.
double cores_per_rank(const Options& o, bool validating) {
  if (o.cores_per_rank > 0) return o.cores_per_rank;
  const int here = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (o.nproc <= here || validating) return static_cast<double>(here) / o.nproc;
  note(loom::detail::concat("assuming ", here, " cores per rank (this machine's: its ", here,
                            " cores cannot hold ", o.nproc, " ranks); pass --cores_per_rank"));
  return here;
}

// The plan `loom train` would run for the prediction's layout, ZeRO stage and recompute mode (the
// other settings as it defaults them).
loom::ParallelPlan chosen_plan(const loom::planner::PlanRequest& req, const loom::planner::Prediction& p) {
  loom::RunConfig config;
  config.model = req.model;
  loom::TrainConfig& t = config.train;
  loom::planner::apply_layout(t, p.layout, req.global_batch);
  t.recompute = p.recompute;
  t.zero = p.zero;
  t.bucket_mb = req.bucket_mb;
  return loom::make_parallel_plan(config, req.world);
}

// Trains the chosen layouts and prints predicted beside measured step times.
void validate(const Options& o, const loom::planner::PlanRequest& req,
              const loom::planner::KernelCosts& k,
              const std::vector<loom::planner::Prediction>& preds) {
  namespace planner = loom::planner;
  std::vector<planner::Layout> layouts;
  if (!o.layouts.empty()) {
    layouts = planner::parse_layouts(o.layouts, req.world, "--layouts");
  } else {
    for (const auto& p : planner::pick_layouts(preds, o.validate)) layouts.push_back(p.layout);
  }
  planner::ValidationRun run = o.run;
  run.config = o.config;
  run.threads = req_threads(o, req);
  run.recompute = req.recompute;
  std::printf("\nvalidation: %zu layouts trained by `loom train` on %d local ranks x %d thread(s), "
              "%d steps each, median step of steps 3-%d (logs in %s)\n",
              layouts.size(), req.world, run.threads, run.steps, run.steps, run.out_dir.c_str());
  std::fflush(stdout);
  // Every prediction first: a layout the request cannot run is refused before any training.
  std::vector<planner::ValidationRow> rows;
  for (const auto& L : layouts) rows.push_back({L, planner::predict(req, k, o.bw, L).step_s, 0});
  planner::PlanRequest one = req;
  one.world = 1;
  std::optional<planner::ValidationRow> baseline;
  if (req.world > 1 && o.baseline)
    baseline = planner::ValidationRow{{}, planner::predict(one, k, o.bw, {}).step_s, 0};
  auto measure = [&](const planner::PlanRequest& r, planner::ValidationRow& row,
                     const std::string& name) {
    row.measured_s = planner::measure_layout(r, row.layout, run, name);
    std::printf("  measured %s%s: %.4f s/step\n", row.layout.describe().c_str(),
                &r == &one ? " (1-rank baseline)" : "", row.measured_s);
    std::fflush(stdout);
  };
  if (baseline) measure(one, *baseline, "baseline");
  for (size_t i = 0; i < rows.size(); ++i) measure(req, rows[i], std::to_string(i));
  std::printf("%s", planner::validation_table(rows, baseline ? &*baseline : nullptr).c_str());
}

int run(const Options& o) {
  const nlohmann::json j = loom::load_config_json(o.config);
  LOOM_CHECK(j.is_object() && j.contains("model"), o.config, ": no \"model\" section");
  loom::planner::PlanRequest req;
  req.model = j["model"].get<loom::GPTConfig>();
  req.model.validate();
  const nlohmann::json train = j.value("train", nlohmann::json::object());
  const int batch = train.value("batch_size", 8);
  req.world = o.nproc;
  req.global_batch = o.global_batch > 0 ? o.global_batch : batch * o.nproc;
  req.seq = o.seq > 0 ? o.seq : train.value("seq_len", 0) > 0 ? train.value("seq_len", 0)
                                                               : req.model.context_len;
  req.mem_gb = o.mem_gb;
  req.bucket_mb = o.bucket_mb;
  LOOM_CHECK(o.bucket_mb > 0, "--bucket_mb must be > 0, got ", o.bucket_mb);
  LOOM_CHECK(o.nproc >= 1, "--nproc must be >= 1, got ", o.nproc);
  LOOM_CHECK(o.threads >= 0, "--threads must be >= 0 (0: as many as a rank's cores), got ", o.threads);
  LOOM_CHECK(o.cores_per_rank >= 0, "--cores_per_rank must be >= 0 (0: this machine's cores / "
             "--nproc when the ranks fit here), got ", o.cores_per_rank);
  LOOM_CHECK(o.validate >= 0, "--validate must be >= 0, got ", o.validate);
  LOOM_CHECK(o.run.steps >= 3, "--steps must be >= 3 (the first two warm up), got ", o.run.steps);
  LOOM_CHECK(o.bw.p2p_gbps > 0 && o.bw.allreduce_gbps > 0, "--p2p_gbps and --allreduce_gbps must be > 0");
  LOOM_CHECK(o.bw.inter_host_gbps > 0, "--inter_host_gbps must be > 0, got ", o.bw.inter_host_gbps);
  LOOM_CHECK(o.ranks_per_host >= 0 && (o.ranks_per_host == 0 || o.nproc % o.ranks_per_host == 0),
             "--ranks_per_host must divide --nproc ", o.nproc, " (or be 0: every rank on one host), got ",
             o.ranks_per_host);
  req.ranks_per_host = o.ranks_per_host;
  // Every ZeRO stage and recompute mode unless one is named (a validation trains one of each).
  const bool validating = o.validate > 0 || !o.layouts.empty();
  std::vector<int> zero_stages;
  if (o.zero == "all" && !validating) {
    zero_stages = {0, 1, 2, 3};
  } else {
    const std::string z = o.zero == "all" ? "0" : o.zero;
    LOOM_CHECK(z == "0" || z == "1" || z == "2" || z == "3",
               "--zero must be 0, 1, 2, 3 or all, got '", o.zero, "'");
    zero_stages = {z[0] - '0'};
  }
  std::vector<loom::Recompute> recomputes;
  if (o.recompute == "all" && !validating)
    recomputes = {loom::Recompute::kNone, loom::Recompute::kSelective, loom::Recompute::kFull};
  else
    recomputes = {o.recompute == "all" ? loom::Recompute::kNone
                                       : loom::parse_recompute(o.recompute, "--recompute (or all)")};
  req.zero = zero_stages[0];
  req.recompute = recomputes[0];
  if (!o.layouts.empty()) loom::planner::parse_layouts(o.layouts, o.nproc, "--layouts");
  req.cores_per_rank = cores_per_rank(o, validating);
  const int threads = req_threads(o, req);

  const loom::Timer started;
  int calibration_seq = 0;
  const loom::GPTConfig timed = loom::planner::calibration_model(req.model, req.seq, &calibration_seq);
  const auto times = loom::planner::cached_kernel_times(
      timed, calibration_seq, threads, loom::planner::calibration_cache_path(), o.recalibrate, note);
  const auto k = loom::planner::kernel_costs(times, req.model, req.seq);
  std::printf("loom plan: %s, %d ranks x %g core(s) (%d thread(s) timed), global batch %d x %d "
              "tokens, ZeRO %s, recompute %s\n",
              o.config.c_str(), req.world, req.cores_per_rank, threads, req.global_batch, req.seq,
              zero_stages.size() > 1 ? "0/1/2/3" : std::to_string(req.zero).c_str(),
              recomputes.size() > 1 ? "none/selective/full" : loom::recompute_name(req.recompute));
  if (timed.d_model != req.model.d_model || timed.vocab_size != req.model.vocab_size ||
      calibration_seq != req.seq)
    std::printf("calibrated on a scaled-down block (width %d, vocabulary %d, %d tokens), "
                "extrapolated by FLOPs\n",
                timed.d_model, timed.vocab_size, calibration_seq);
  std::printf("calibrated per sequence: block F %.1f B %.1f W %.1f ms | embedding F %.1f W %.1f ms"
              " | head F %.1f B %.1f W %.1f ms | AdamW %.2f ns/param (per rank: x %.3g)\n",
              k.block.f * 1e3, k.block.b * 1e3, k.block.w * 1e3, k.embedding.f * 1e3,
              k.embedding.w * 1e3, k.head.f * 1e3, k.head.b * 1e3, k.head.w * 1e3,
              k.adamw_s_per_param * 1e9, k.threads / req.cores_per_rank);
  std::printf("bandwidths: p2p %.1f GB/s, all-reduce bus %.1f GB/s", o.bw.p2p_gbps,
              o.bw.allreduce_gbps);
  if (req.ranks_per_host > 0 && req.ranks_per_host < req.world)
    std::printf(" inside a host; %d hosts of %d ranks, %g GB/s between them",
                req.world / req.ranks_per_host, req.ranks_per_host, o.bw.inter_host_gbps);
  std::printf("\n");
  note(loom::detail::concat("calibrated in ", static_cast<int>(started.seconds() * 10) / 10.0,
                            " s; predicting every layout under ", zero_stages.size() * recomputes.size(),
                            " ZeRO x recompute combination(s)"));
  const bool terminal = ::isatty(STDERR_FILENO);
  const auto preds = loom::planner::plan_each(req, k, o.bw, zero_stages, recomputes, [&](int done, int total) {
    if (terminal) std::fprintf(stderr, "\rloom plan: %d of %d combinations%s", done, total, done == total ? "\n" : "");
  });
  note(loom::detail::concat(preds.size(), " layouts predicted; done in ",
                            static_cast<int>(started.seconds() * 10) / 10.0, " s"));
  std::printf("%4s  %-40s %4s %-9s %9s %9s %8s %8s %7s %9s  %s\n", "rank", "layout", "zero",
              "recompute", "step_s", "tokens/s", "pipe_s", "comm_s", "bubble", "mem_GB",
              "stage blocks");
  int shown = 0;
  for (const auto& p : preds) {
    if (shown == o.top) break;
    std::string cuts;
    for (size_t i = 0; i + 1 < p.stage_first_block.size(); ++i) {
      if (i > 0) cuts += ',';
      cuts += std::to_string(p.stage_first_block[i + 1] - p.stage_first_block[i]);
    }
    std::printf("%4d  %-40s %4d %-9s %9.3f %9.0f %8.3f %8.3f %6.1f%% %8.2f%s  %s\n", ++shown,
                p.layout.describe().c_str(), p.zero, loom::recompute_name(p.recompute), p.step_s,
                static_cast<double>(req.global_batch) * req.seq / p.step_s, p.pipeline_s,
                p.dp_comm_s, p.bubble * 100, p.memory_gb, p.fits ? " " : "!", cuts.c_str());
  }
  const size_t over = std::count_if(preds.begin(), preds.end(), [](const auto& p) { return !p.fits; });
  if (over > 0) std::printf("(!: over --mem_gb %.2f; %zu of %zu layouts)\n", o.mem_gb, over, preds.size());
  if (!preds.empty()) std::printf("chosen %s\n", chosen_plan(req, preds.front()).describe().c_str());
  if (o.validate > 0 || !o.layouts.empty()) validate(o, req, k, preds);
  return 0;
}

const bool registered = loom::cli::register_command(
    "plan",
    "Predict step time, pipeline bubble and memory per rank of every dp x tp x pp layout, best "
    "first",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--config", o->config, "config file (its \"model\" and \"train\" sections)")->required();
      app.add_option("--nproc,-n", o->nproc, "world size (ranks)")->capture_default_str();
      app.add_option("--mem_gb", o->mem_gb, "memory per rank in GB; 0: no limit")->capture_default_str();
      app.add_option("--global_batch", o->global_batch,
                     "sequences per step; 0: train.batch_size x nproc")->capture_default_str();
      app.add_option("--seq_len", o->seq, "tokens per sequence; 0: train.seq_len or context_len")->capture_default_str();
      app.add_option("--threads", o->threads,
                     "threads per rank (calibration and validation runs); 0: as many as a rank's "
                     "cores, at most this machine's")->capture_default_str();
      app.add_option("--top", o->top, "rows to print")->capture_default_str();
      app.add_option("--cores_per_rank", o->cores_per_rank,
                     "cores each rank computes on (scales the calibrated costs by timed threads / "
                     "cores); 0: this machine's cores / nproc when the ranks fit here, else this "
                     "machine's cores (said on stderr)")
          ->capture_default_str();
      app.add_option("--recalibrate", o->recalibrate,
                     "time the kernels again even when the calibration cache holds them (and "
                     "replace its entry), e.g. after the machine was busy")
          ->capture_default_str();
      app.add_option("--validate", o->validate,
                     "then train this many of the layouts (the best of each dp x tp x pp shape "
                     "first) for --steps steps each and print predicted beside measured step time")
          ->capture_default_str();
      app.add_option("--layouts", o->layouts,
                     "validate these layouts instead: DPxTPxPP[:schedule[:micro_batches]], "
                     "comma-separated, e.g. 2x1x1,1x2x1,1x1x2:zb1p:4");
      app.add_option("--baseline", o->baseline,
                     "with --validate on several ranks: also train the 1-rank layout first and "
                     "print each layout's predicted and measured speedup over it")
          ->capture_default_str();
      app.add_option("--steps", o->run.steps, "training steps per validated layout (>= 3)")
          ->capture_default_str();
      app.add_option("--data_dir", o->run.data_dir,
                     "data of the validation runs; default: the config's train.data_dir");
      app.add_option("--out_dir", o->run.out_dir,
                     "where the validation runs write (one directory and log each)")
          ->capture_default_str();
      app.add_option("--recompute", o->recompute,
                     "activation recomputation the run will use: none, selective or full (adds "
                     "its backward cost, lowers activation memory; full excludes zb1p); all: "
                     "try each (none under --validate / --layouts)")
          ->capture_default_str();
      app.add_option("--zero", o->zero,
                     "ZeRO stage the run will use: 0, 1 (AdamW moments / dp), 2 (also the "
                     "gradients, as ShardedGradients plans them) or 3 (also the parameters, "
                     "gathered per block); 2 and 3: no pp > 1 layouts; all: try each (0 under "
                     "--validate / --layouts)")
          ->capture_default_str();
      app.add_option("--bucket_mb", o->bucket_mb, "gradient bucket size, MiB (ZeRO-2's bucket pool)")
          ->capture_default_str();
      app.add_option("--p2p_gbps", o->bw.p2p_gbps,
                     "point-to-point bandwidth, GB/s (measure: loom bench comm)")->capture_default_str();
      app.add_option("--allreduce_gbps", o->bw.allreduce_gbps,
                     "all-reduce bus bandwidth, GB/s (measure: loom bench comm)")->capture_default_str();
      app.add_option("--ranks_per_host", o->ranks_per_host,
                     "ranks on each host (consecutive mesh positions, as the mesh places them); "
                     "must divide --nproc; 0: every rank on one host")
          ->capture_default_str();
      app.add_option("--inter_host_gbps", o->bw.inter_host_gbps,
                     "bandwidth between hosts, GB/s: all-reduce bus and point to point of groups "
                     "that span hosts (measure: loom bench comm under mpirun across hosts)")
          ->capture_default_str();
      return [o] { return run(*o); };
    });

}  // namespace
