// `loom plan --config C --nproc N [--mem_gb G]`: predicted step time, pipeline bubble and memory
// per rank for every dp x tp x pp layout (with schedules and micro-batch counts) of N ranks,
// best first (see loom/parallel/planner/planner.hpp). Kernel costs are timed once at start-up.
// `--validate K` (or `--layouts 2x1x1,1x1x2:zb1p:4`) then trains K of the layouts for a few
// steps each on N local ranks and prints predicted beside measured step time
// (bench/plan_validation.hpp).
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <nlohmann/json.hpp>

#include "bench/plan_validation.hpp"
#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/model/gpt_config.hpp"
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
  int threads = 1;
  int top = 20;
  std::string recompute = "none";
  int zero = 0;
  double bucket_mb = 25;
  int validate = 0;
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  bool baseline = true;
  std::string layouts;
  loom::planner::ValidationRun run;
  loom::planner::Bandwidths bw;
};

// The plan `loom train` would run for the layout (the other settings as it defaults them).
loom::ParallelPlan chosen_plan(const loom::planner::PlanRequest& req, const loom::planner::Layout& L) {
  loom::RunConfig config;
  config.model = req.model;
  loom::TrainConfig& t = config.train;
  t.tp = L.tp;
  t.pp = L.pp;
  t.schedule = L.schedule;
  t.virtual_stages = L.virtual_stages;
  t.micro_batches = L.micro_batches;
  t.recompute = req.recompute;
  t.zero = req.zero;
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
  run.threads = o.threads;
  run.recompute = req.recompute;
  std::printf("\nvalidation: %zu layouts trained by `loom train` on %d local ranks x %d thread(s), "
              "%d steps each, median step of steps 3-%d (logs in %s)\n",
              layouts.size(), req.world, o.threads, run.steps, run.steps, run.out_dir.c_str());
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
  req.recompute = loom::parse_recompute(o.recompute);
  req.cores = o.cores;
  req.zero = o.zero;
  req.bucket_mb = o.bucket_mb;
  LOOM_CHECK(o.zero >= 0 && o.zero <= 2, "--zero must be 0, 1 or 2, got ", o.zero);
  LOOM_CHECK(o.bucket_mb > 0, "--bucket_mb must be > 0, got ", o.bucket_mb);
  LOOM_CHECK(o.nproc >= 1, "--nproc must be >= 1, got ", o.nproc);
  LOOM_CHECK(o.threads >= 1, "--threads must be >= 1, got ", o.threads);
  LOOM_CHECK(o.cores >= 0, "--cores must be >= 0, got ", o.cores);
  LOOM_CHECK(o.validate >= 0, "--validate must be >= 0, got ", o.validate);
  LOOM_CHECK(o.run.steps >= 3, "--steps must be >= 3 (the first two warm up), got ", o.run.steps);
  if (!o.layouts.empty()) loom::planner::parse_layouts(o.layouts, o.nproc, "--layouts");
  LOOM_CHECK(o.bw.p2p_gbps > 0 && o.bw.allreduce_gbps > 0, "--p2p_gbps and --allreduce_gbps must be > 0");

  const auto k = loom::planner::calibrate_kernel_costs(req.model, req.seq, o.threads);
  std::printf("loom plan: %s, %d ranks x %d thread(s), global batch %d x %d tokens, recompute %s, "
              "ZeRO %d\n",
              o.config.c_str(), req.world, o.threads, req.global_batch, req.seq,
              loom::recompute_name(req.recompute), req.zero);
  std::printf("calibrated per sequence: block F %.1f B %.1f W %.1f ms | embedding F %.1f W %.1f ms"
              " | head F %.1f B %.1f W %.1f ms | AdamW %.2f ns/param\n",
              k.block.f * 1e3, k.block.b * 1e3, k.block.w * 1e3, k.embedding.f * 1e3,
              k.embedding.w * 1e3, k.head.f * 1e3, k.head.b * 1e3, k.head.w * 1e3,
              k.adamw_s_per_param * 1e9);
  std::printf("bandwidths: p2p %.1f GB/s, all-reduce bus %.1f GB/s | %d cores%s\n", o.bw.p2p_gbps,
              o.bw.allreduce_gbps, o.cores,
              o.cores > 0 && req.world * o.threads > o.cores ? " (oversubscribed: compute slowed)"
                                                              : "");
  const auto preds = loom::planner::plan(req, k, o.bw);
  std::printf("%4s  %-40s %9s %9s %8s %8s %7s %9s  %s\n", "rank", "layout", "step_s", "tokens/s",
              "pipe_s", "comm_s", "bubble", "mem_GB", "stage blocks");
  int shown = 0;
  for (const auto& p : preds) {
    if (shown == o.top) break;
    std::string cuts;
    for (size_t i = 0; i + 1 < p.stage_first_block.size(); ++i) {
      if (i > 0) cuts += ',';
      cuts += std::to_string(p.stage_first_block[i + 1] - p.stage_first_block[i]);
    }
    std::printf("%4d  %-40s %9.3f %9.0f %8.3f %8.3f %6.1f%% %8.2f%s  %s\n", ++shown,
                p.layout.describe().c_str(), p.step_s,
                static_cast<double>(req.global_batch) * req.seq / p.step_s, p.pipeline_s,
                p.dp_comm_s, p.bubble * 100, p.memory_gb, p.fits ? " " : "!", cuts.c_str());
  }
  const size_t over = std::count_if(preds.begin(), preds.end(), [](const auto& p) { return !p.fits; });
  if (over > 0) std::printf("(!: over --mem_gb %.2f; %zu of %zu layouts)\n", o.mem_gb, over, preds.size());
  if (!preds.empty()) std::printf("chosen %s\n", chosen_plan(req, preds.front().layout).describe().c_str());
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
      app.add_option("--threads", o->threads, "threads per rank (calibration uses as many)")->capture_default_str();
      app.add_option("--top", o->top, "rows to print")->capture_default_str();
      app.add_option("--cores", o->cores,
                     "hardware threads the ranks share (default: this machine's); more rank "
                     "threads than that slow compute proportionally; 0: no limit")
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
                     "its backward cost, lowers activation memory; full excludes zb1p)")
          ->capture_default_str();
      app.add_option("--zero", o->zero,
                     "ZeRO stage the run will use: 0, 1 (AdamW moments / dp) or 2 (also the "
                     "gradients, as ShardedGradients plans them; no pp > 1 layouts)")
          ->capture_default_str();
      app.add_option("--bucket_mb", o->bucket_mb, "gradient bucket size, MiB (ZeRO-2's bucket pool)")
          ->capture_default_str();
      app.add_option("--p2p_gbps", o->bw.p2p_gbps,
                     "point-to-point bandwidth, GB/s (measure: loom bench comm)")->capture_default_str();
      app.add_option("--allreduce_gbps", o->bw.allreduce_gbps,
                     "all-reduce bus bandwidth, GB/s (measure: loom bench comm)")->capture_default_str();
      return [o] { return run(*o); };
    });

}  // namespace
