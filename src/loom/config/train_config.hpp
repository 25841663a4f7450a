#pragma once
// A run's configuration: one JSON file {"model": {GPTConfig fields}, "train": {TrainConfig
// fields}} plus command-line overrides. Field names are unique across both sections, so every
// field is also a flat flag: `--n_layer 2 --lr 1e-3`. Unknown fields and flags, mistyped values
// and missing required fields are errors that name them. Every value is parsed once, here: the
// named choices (precision, schedule, recompute, grad_reduce, parallel) become enumerations and
// every range is checked before any process, mesh or timing starts.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/gpt_config.hpp"
#include "loom/model/recompute.hpp"
#include "loom/parallel/pipeline/schedule.hpp"
#include "loom/parallel/ps/ps_mode.hpp"

namespace loom {

// What the data-parallel gradient all-reduce moves: "f32" or "bf16".
enum class GradReduce { kF32, kBF16 };
const char* grad_reduce_name(GradReduce g);

// Who chooses tp, pp, micro_batches and schedule: "manual" (the flags) or "auto" (the planner).
enum class LayoutChoice { kManual, kAuto };
const char* layout_choice_name(LayoutChoice l);

// --straggler RANK:FACTOR (or LOOM_STRAGGLER): that rank's compute (under --ps a worker's) takes
// FACTOR times as long (it sleeps for the difference), for tests and benchmarks of the
// parameter-server modes against all-reduce data parallelism (train/straggler_delay.hpp).
struct Straggler {
  int rank = -1;  // -1: none
  double factor = 1;
  bool operator==(const Straggler&) const = default;
};
// "" -> none; "2:3" -> rank 2, factor 3; anything else is an error naming `flag`.
Straggler parse_straggler(const std::string& text, const std::string& flag);
std::string straggler_text(const Straggler& s);

struct TrainConfig {
  std::string data_dir;  // required
  std::string out_dir;   // required
  int batch_size = 8;    // sequences per micro-batch per rank (global batch: x world x grad_accum)
  int seq_len = 0;       // 0: the model's context_len
  int stride = 0;        // between window starts; 0: seq_len
  int grad_accum = 1;    // micro-batches per optimizer step
  int64_t max_steps = 1000;
  float lr = 6e-4f;  // peak
  float initial_lr = 0.0f;
  float min_lr = 6e-5f;
  int64_t warmup_steps = 100;
  float weight_decay = 0.1f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float max_norm = 1.0f;  // 0: no clipping
  bool clip_during_warmup = false;
  int64_t log_every = 1;    // the step line every this many steps (the first and last always)
  int64_t eval_freq = 100;  // 0: no evaluation
  int eval_iter = 10;
  int64_t save_freq = 500;  // 0: only at the end
  int keep_last = 0;        // 0: keep every checkpoint
  int64_t sample_freq = 0;  // 0: a sample with every evaluation; -1: never
  int sample_tokens = 32;
  std::string sample_prompt = "Every effort moves you";
  int top_k = 0;            // 0: no top-k filter
  float temperature = 0.0f;  // 0: greedy
  uint64_t seed = 1337;
  int threads = 0;  // 0: OpenMP's default
  kernels::MatmulPrecision precision = kernels::MatmulPrecision::kF32;  // GEMM inputs (bf16: f32 weights, optimizer, reductions)
  std::string log_file = "metrics.jsonl";  // relative to out_dir; "": none
  bool async_save = true;  // checkpoint files are written in the background
  // Data parallelism.
  int nproc = 1;       // `loom train` launches itself as this many local ranks (shm backend)
  int min_nproc = 0;   // elastic (--nproc MIN:MAX): fewest ranks a restart may go on with; 0: not elastic
  int zero = 0;        // 1: ZeRO-1, AdamW moments sharded over the ranks; 2: ZeRO-2
  double bucket_mb = 25;  // gradient all-reduce bucket size (MiB), overlapped with backward
  GradReduce grad_reduce = GradReduce::kF32;  // what the gradient all-reduce moves (bf16: zero 0 only)
  // Model parallelism: the world is pp x dp x tp ranks (dp = world / (tp x pp)).
  int tp = 1;  // tensor-parallel ranks per model replica
  // Megatron sequence parallelism (needs tp > 1): LayerNorm, dropout and residual activations
  // split over the tp ranks along the sequence.
  bool sequence_parallel = false;
  int pp = 1;  // pipeline stages
  // Expert parallelism (mixture-of-experts models): each MoE block's experts are split over ep of
  // the data-parallel ranks (ep divides dp and moe_experts); tokens reach them by all-to-all.
  int ep = 1;
  int micro_batches = 0;  // pp > 1: batch_size is cut into this many micro-batches; 0: pp
  pipeline::ScheduleKind schedule = pipeline::ScheduleKind::OneFOneB;
  int virtual_stages = 1;  // schedule interleaved: model chunks per pipeline rank
  LayoutChoice parallel = LayoutChoice::kManual;  // auto: the planner picks tp, pp, micro_batches, schedule
  Recompute recompute = Recompute::kNone;          // activation recomputation
  std::string partition;  // pp > 1: blocks per stage ("2,4"); "": balanced by timed costs
  bool rebalance = false;  // pp > 1: re-time the stages, re-partition at a checkpoint if uneven
  int rebalance_steps = 5;  // steps timed by rebalance
  // Parameter servers: the first ps ranks serve the parameters, the others are workers.
  int ps = 0;  // 0: no parameter servers (all-reduce data parallelism)
  ps::Mode ps_mode = ps::Mode::kSync;
  int staleness = -1;  // ps_mode ssp: the bound s (>= 0); -1: not given
  Straggler straggler;
};

// The parameter-server layout against the job's world size (known once the launcher is): ps
// below the world, the straggler a worker (without --ps: a rank of the job). Errors name the
// flag, the value and what is valid.
void check_ps_world(const TrainConfig& c, int world);

struct RunConfig {
  GPTConfig model;
  TrainConfig train;
};

nlohmann::json to_json(const RunConfig& c);

// Parses {"model": .., "train": ..}; `origin` names the source in errors. Fills seq_len and stride
// defaults and validates every field.
RunConfig parse_run_config(const nlohmann::json& j, const std::string& origin);

// The JSON of `path` ("" = empty config), with `overrides` (field name -> text from the command
// line) applied; not yet validated.
nlohmann::json load_config_json(const std::string& path);
void apply_overrides(nlohmann::json& j, const std::map<std::string, std::string>& overrides);

// The validated "model" section of the config file `path` (for the benchmarks and `loom memory`,
// which need no "train" section); errors name the file.
GPTConfig load_model_config(const std::string& path);

// Every field, for the command line: name, section ("model" or "train"), value type ("INT",
// "FLOAT", "BOOL", "TEXT"), default as text, help.
struct ConfigField {
  std::string name, section, type, default_text, help;
};
std::vector<ConfigField> config_fields();

}  // namespace loom
