#include "loom/config/train_config.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <type_traits>

#include "loom/core/check.hpp"
#include "loom/core/json_input.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/model_shard.hpp"
#include "loom/optim/lr_schedule.hpp"
#include "loom/parallel/pipeline/partition.hpp"

namespace loom {

const char* grad_reduce_name(GradReduce g) { return g == GradReduce::kBF16 ? "bf16" : "f32"; }

const char* layout_choice_name(LayoutChoice l) { return l == LayoutChoice::kAuto ? "auto" : "manual"; }

Straggler parse_straggler(const std::string& text, const std::string& flag) {
  if (text.empty()) return {};
  Straggler s;
  char tail = 0;
  const bool ok = std::sscanf(text.c_str(), "%d:%lf%c", &s.rank, &s.factor, &tail) == 2 &&
                  s.rank >= 0 && std::isfinite(s.factor) && s.factor >= 1;
  LOOM_CHECK(ok, flag, " ", text, ": expected RANK:FACTOR with a rank >= 0 and a factor >= 1, e.g. 1:3");
  return s;
}

std::string straggler_text(const Straggler& s) {
  if (s.rank < 0) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d:%g", s.rank, s.factor);
  return buf;
}

void check_ps_world(const TrainConfig& c, int world) {
  if (c.ps == 0) {
    LOOM_CHECK(c.straggler.rank < world, "--straggler ", straggler_text(c.straggler), ": rank ",
               c.straggler.rank, " is not in the job; its ranks are 0..", world - 1);
    return;
  }
  LOOM_CHECK(c.ps < world, "--ps ", c.ps, " needs at least one worker: the job has ", world,
             " rank(s), so --ps must be below ", world, " (servers are ranks 0..ps-1)");
  LOOM_CHECK(c.straggler.rank < 0 || (c.straggler.rank >= c.ps && c.straggler.rank < world),
             "--straggler ", straggler_text(c.straggler), ": rank ", c.straggler.rank,
             " is not a worker; the workers are ranks ", c.ps, "..", world - 1);
}

namespace {

// The one list of train fields: (name, member, help). Serialisation, parsing and --help all
// come from it.
template <typename C, typename F>
void visit_train_fields(C& c, F&& f) {
  f("data_dir", c.data_dir, "directory of token shards (*train*.bin, *val*.bin) and meta.json [required]");
  f("out_dir", c.out_dir, "directory for checkpoints (step_XXXXXX, latest) and the metrics log [required]");
  f("batch_size", c.batch_size, "sequences per micro-batch per rank; the global batch is batch_size x ranks x grad_accum");
  f("seq_len", c.seq_len, "tokens per sequence (<= context_len); 0: context_len");
  f("stride", c.stride, "tokens between the starts of consecutive windows; 0: seq_len");
  f("grad_accum", c.grad_accum, "micro-batches accumulated per optimizer step");
  f("max_steps", c.max_steps, "optimizer steps to train");
  f("lr", c.lr, "peak learning rate (after warm-up)");
  f("initial_lr", c.initial_lr, "learning rate at step 0 (linear warm-up to lr)");
  f("min_lr", c.min_lr, "learning rate at the end of the cosine decay");
  f("warmup_steps", c.warmup_steps, "steps of linear warm-up");
  f("weight_decay", c.weight_decay, "AdamW decoupled weight decay (not on biases, LayerNorm gains)");
  f("beta1", c.beta1, "AdamW beta1");
  f("beta2", c.beta2, "AdamW beta2");
  f("eps", c.eps, "AdamW epsilon");
  f("max_norm", c.max_norm, "clip the global gradient norm to this; 0: never clip");
  f("clip_during_warmup", c.clip_during_warmup, "also clip during warm-up (the seed does not)");
  f("log_every", c.log_every, "print the step line every this many steps (the first and last always); metrics.jsonl keeps every step");
  f("eval_freq", c.eval_freq, "evaluate train/val loss every this many steps; 0: never");
  f("eval_iter", c.eval_iter, "batches of train and of val data per evaluation");
  f("save_freq", c.save_freq, "checkpoint every this many steps (and at the end); 0: only at the end");
  f("keep_last", c.keep_last, "keep only this many newest checkpoints; 0: keep all");
  f("sample_freq", c.sample_freq, "print a generated sample every this many steps; 0: with each evaluation; -1: never");
  f("sample_tokens", c.sample_tokens, "tokens generated per sample");
  f("sample_prompt", c.sample_prompt, "prompt of the samples");
  f("top_k", c.top_k, "sample among the k most likely tokens; 0: all");
  f("temperature", c.temperature, "sampling temperature; 0: greedy");
  f("seed", c.seed, "seed of initialisation, data order and dropout");
  f("threads", c.threads, "OpenMP/BLAS threads per rank; 0: all cores, divided among the ranks on this host");
  f("precision", c.precision, "matmul inputs: f32, or bf16 (autocast-style: weights, gradients, optimizer and reductions stay f32)");
  f("log_file", c.log_file, "metrics log (JSON lines), relative to out_dir; empty: none");
  f("async_save", c.async_save, "write checkpoints in the background (training waits only for a copy of the state)");
  f("nproc", c.nproc, "ranks to launch on this host (shm backend); ignored in a process already launched as a rank (loom launch, mpirun); MIN:MAX makes the job elastic (see min_nproc)");
  f("min_nproc", c.min_nproc, "elastic jobs (--nproc MIN:MAX sets it): a restart whose ranks cannot all start goes on with fewer, down to this many, raising grad_accum to keep the global batch; 0: not elastic");
  f("zero", c.zero, "1: ZeRO-1, shard the AdamW moments over the data-parallel ranks; 2: ZeRO-2, also shard the gradients (each bucket reduce-scattered as backward finishes it; not with pp); 3: ZeRO-3, also shard the parameters (each block's all-gathered before its forward and backward; not with pp or MoE); 0: replicate them");
  f("bucket_mb", c.bucket_mb, "gradient bucket size in MiB: buckets are all-reduced while backward runs");
  f("grad_reduce", c.grad_reduce, "what the data-parallel gradient all-reduce moves: f32, or bf16 (half the bytes; every hop sums in f32; the averaged gradients are bf16-rounded; zero 0 only)");
  f("tp", c.tp, "tensor-parallel ranks per model replica (Megatron split of heads, MLP and vocabulary); divides the world size and n_head; batch_size stays per data-parallel rank");
  f("sequence_parallel", c.sequence_parallel, "with tp > 1: Megatron sequence parallelism, each tp rank holds 1/tp of the batch's tokens (a contiguous range of its batch x seq_len rows) in the LayerNorm, dropout and residual regions (reduce-scatter / all-gather in place of the all-reduces); seq_len must be divisible by tp");
  f("ep", c.ep, "expert-parallel ranks (mixture-of-experts models): each MoE block's experts are split over ep data-parallel ranks, tokens travel to them by all-to-all; divides dp and moe_experts; 1: every rank runs every expert");
  f("pp", c.pp, "pipeline stages (contiguous blocks balanced by timed cost; embedding on the first, LM head on the last); divides the world size, <= n_layer");
  f("micro_batches", c.micro_batches, "under pp > 1: micro-batches per batch_size (must divide it); 0: pp");
  f("schedule", c.schedule, "pipeline schedule: gpipe, 1f1b, interleaved (with virtual_stages) or zb1p");
  f("virtual_stages", c.virtual_stages, "schedule interleaved: model chunks per pipeline rank (the model is cut into pp x virtual_stages parts; rank r holds parts r, pp + r, ..); 1 otherwise");
  f("parallel", c.parallel, "manual: the layout given by tp, pp, micro_batches, schedule; auto: the planner (loom plan) picks them for nproc ranks at the global batch batch_size x nproc x grad_accum");
  f("recompute", c.recompute, "activation recomputation: none; selective (the attention probabilities are recomputed in backward); full (only each block's input is kept, the block is recomputed in backward); gradients are identical");
  f("partition", c.partition, "under pp > 1: blocks per pipeline stage, e.g. 2,4 (one count per stage, adding up to n_layer); empty: balanced by costs timed at start-up");
  f("rebalance", c.rebalance, "under pp > 1: time each stage's compute over rebalance_steps early steps; if the slowest exceeds the mean by > 10%, re-partition at the next checkpoint and continue from it");
  f("rebalance_steps", c.rebalance_steps, "steps timed by rebalance (from the run's 2nd step)");
  f("ps", c.ps, "parameter servers: the first ps ranks hold the parameters (range-partitioned) and run AdamW, the others are workers that pull, compute and push; 0: all-reduce data parallelism");
  f("ps_mode", c.ps_mode, "with ps > 0: sync (= all-reduce data parallelism), async (each push applied as it arrives) or ssp (bounded staleness, see staleness); a step is one server update (sync: every worker's batch; async/ssp: one worker's)");
  f("staleness", c.staleness, "ps_mode ssp: a worker may begin step c only once every worker has pushed step c - staleness - 1 (0: lock-step); -1: not set");
  f("straggler", c.straggler, "RANK:FACTOR: that rank's compute (under --ps a worker's) takes FACTOR times as long (for tests and benchmarks; LOOM_STRAGGLER too); empty: none");
}

const std::map<std::string, std::string>& model_help() {
  static const std::map<std::string, std::string> help = {
      {"vocab_size", "model: vocabulary size (>= the tokenizer's)"},
      {"context_len", "model: maximum sequence length (learned positions)"},
      {"n_layer", "model: transformer blocks"},
      {"n_head", "model: attention heads"},
      {"d_model", "model: embedding width"},
      {"dropout", "model: dropout probability"},
      {"qkv_bias", "model: bias on the q,k,v projection"},
      {"moe_experts", "model: experts per mixture-of-experts block; 0: dense"},
      {"moe_top_k", "model: experts per token, 1..moe_experts (not the sampling top_k)"},
      {"moe_every", "model: block i is an MoE block when i % moe_every == moe_every - 1"},
      {"moe_capacity_factor", "model: expert capacity ceil(f x tokens x top_k / experts); 0: dropless"},
      {"moe_aux_loss_coef", "model: weight of the load-balancing loss E x sum_i f_i P_i"},
      {"moe_z_loss_coef", "model: weight of the router z-loss mean(logsumexp(logits)^2)"}};
  return help;
}

void read_value(const nlohmann::json& v, const std::string& key, std::string& out) {
  LOOM_CHECK(v.is_string(), "train.", key, " must be a string, got ", v.dump());
  out = v.get<std::string>();
}
void read_value(const nlohmann::json& v, const std::string& key, bool& out) {
  LOOM_CHECK(v.is_boolean(), "train.", key, " must be true or false, got ", v.dump());
  out = v.get<bool>();
}
template <typename Float>
  requires std::is_floating_point_v<Float>
void read_value(const nlohmann::json& v, const std::string& key, Float& out) {
  LOOM_CHECK(v.is_number(), "train.", key, " must be a number, got ", v.dump());
  const double x = v.get<double>();
  LOOM_CHECK(std::isfinite(x) && std::fabs(x) <= std::numeric_limits<Float>::max(), "train.", key,
             " = ", v.dump(), " is out of range: it must be a finite number of magnitude <= ",
             std::numeric_limits<Float>::max());
  out = static_cast<Float>(x);
}
std::string text_of(const nlohmann::json& v, const std::string& key) {
  LOOM_CHECK(v.is_string(), "train.", key, " must be a string, got ", v.dump());
  return v.get<std::string>();
}
// The named choices: each is parsed here, once, into its enumeration; an error names the flag
// (every field is one), the value and the valid names.
void read_value(const nlohmann::json& v, const std::string& key, kernels::MatmulPrecision& out) {
  out = kernels::parse_precision(text_of(v, key), "--" + key);
}
void read_value(const nlohmann::json& v, const std::string& key, pipeline::ScheduleKind& out) {
  out = pipeline::parse_schedule_kind(text_of(v, key));
}
void read_value(const nlohmann::json& v, const std::string& key, Recompute& out) {
  out = parse_recompute(text_of(v, key), "--" + key);
}
void read_value(const nlohmann::json& v, const std::string& key, GradReduce& out) {
  const std::string t = text_of(v, key);
  LOOM_CHECK(t == "f32" || t == "bf16", "--", key, " must be f32 or bf16, got '", t, "'");
  out = t == "bf16" ? GradReduce::kBF16 : GradReduce::kF32;
}
void read_value(const nlohmann::json& v, const std::string& key, ps::Mode& out) {
  out = ps::parse_mode(text_of(v, key), "--" + key);
}
void read_value(const nlohmann::json& v, const std::string& key, Straggler& out) {
  out = parse_straggler(text_of(v, key), "--" + key);
}
void read_value(const nlohmann::json& v, const std::string& key, LayoutChoice& out) {
  const std::string t = text_of(v, key);
  LOOM_CHECK(t == "manual" || t == "auto", "--", key, " must be manual or auto, got '", t, "'");
  out = t == "auto" ? LayoutChoice::kAuto : LayoutChoice::kManual;
}
template <typename Int>
  requires std::is_integral_v<Int>
void read_value(const nlohmann::json& v, const std::string& key, Int& out) {
  LOOM_CHECK(v.is_number_integer(), "train.", key, " must be an integer, got ", v.dump());
  if constexpr (std::is_unsigned_v<Int>) {
    LOOM_CHECK(v.is_number_unsigned(), "train.", key, " must be >= 0, got ", v.dump());
    out = v.get<Int>();
  } else {
    const int64_t x = v.get<int64_t>();
    LOOM_CHECK(x >= std::numeric_limits<Int>::min() && x <= std::numeric_limits<Int>::max(),
               "train.", key, " is out of range: ", x);
    out = static_cast<Int>(x);
  }
}

void from_json_train(const nlohmann::json& j, TrainConfig& c) {
  LOOM_CHECK(j.is_object(), "the \"train\" section must be a JSON object, got ", j.dump());
  for (const auto& item : j.items()) {
    const std::string& key = item.key();  // not a structured binding: clang 14 cannot capture one
    const nlohmann::json& v = item.value();
    bool known = false;
    visit_train_fields(c, [&](const char* name, auto& member, const char*) {
      if (key != name) return;
      read_value(v, key, member);
      known = true;
    });
    LOOM_CHECK(known, "unknown field train.", key, " (loom train --help lists the fields)");
  }
}

// The parameter-server fields on their own (check_ps_world adds the world size).
void validate_ps(const TrainConfig& c) {
  LOOM_CHECK(c.ps >= 0, "ps must be >= 0 (0: no parameter servers), got ", c.ps);
  LOOM_CHECK(c.staleness >= -1, "staleness must be >= 0, got ", c.staleness);
  const bool ssp = c.ps_mode == ps::Mode::kSsp;
  LOOM_CHECK(!ssp || c.staleness >= 0, "ps_mode ssp needs --staleness S (>= 0: a worker may run S "
             "steps ahead of the slowest), got ", c.staleness);
  LOOM_CHECK(ssp || c.staleness == -1, "--staleness ", c.staleness, " needs --ps_mode ssp (ps_mode is ",
             ps::mode_name(c.ps_mode), ")");
  if (c.ps == 0) {
    LOOM_CHECK(c.ps_mode == ps::Mode::kSync, "--ps_mode ", ps::mode_name(c.ps_mode),
               " needs parameter servers (--ps S > 0)");
    return;
  }
  LOOM_CHECK(c.tp == 1 && c.pp == 1 && c.zero == 0, "--ps ", c.ps, " cannot be combined with --tp ",
             c.tp, ", --pp ", c.pp, " or --zero ", c.zero, ": every worker holds the whole model and "
             "the servers shard the optimizer (use tp 1, pp 1, zero 0)");
  LOOM_CHECK(c.min_nproc == 0, "--ps ", c.ps, " cannot be combined with an elastic --nproc MIN:MAX "
             "(min_nproc ", c.min_nproc, "): the servers and workers are fixed ranks");
  LOOM_CHECK(c.parallel == LayoutChoice::kManual, "--ps ", c.ps, " cannot be combined with --parallel "
             "auto (the planner does not place parameter servers)");
  LOOM_CHECK(c.grad_reduce == GradReduce::kF32, "--ps ", c.ps, " moves f32 gradients: --grad_reduce bf16 "
             "applies to all-reduce only");
}

// --sequence_parallel splits the tp ranks' sequence: it needs tp > 1 and seq_len divisible by tp,
// and is not built for the split backward (zb1p) or the planner's layouts.
void validate_sequence_parallel(const TrainConfig& c) {
  if (!c.sequence_parallel) return;
  LOOM_CHECK(c.tp > 1, "--sequence_parallel needs --tp > 1 (it splits the sequence over the "
             "tensor-parallel ranks), got --tp ", c.tp);
  LOOM_CHECK(c.seq_len % c.tp == 0, "--sequence_parallel: seq_len ", c.seq_len,
             " must be divisible by --tp ", c.tp, " (each tp rank holds 1/tp of every batch's "
             "tokens)");
  LOOM_CHECK(c.pp == 1 || c.schedule != pipeline::ScheduleKind::ZeroBubbleH1,
             "--sequence_parallel cannot run with schedule zb1p (its weight-gradient pass would "
             "re-gather each block's LayerNorm outputs; not built): use gpipe, 1f1b or interleaved");
  LOOM_CHECK(c.parallel == LayoutChoice::kManual, "--sequence_parallel needs --parallel manual "
             "(the planner does not choose the layout with it yet)");
}

void validate(const RunConfig& rc) {
  const TrainConfig& c = rc.train;
  // Mixture-of-experts blocks run at data parallelism only so far: a pipeline stage without the
  // head cannot weigh their auxiliary losses, and experts under tp are not wired (issue 19).
  LOOM_CHECK(!rc.model.is_moe() || (c.tp == 1 && c.pp == 1 && c.parallel == LayoutChoice::kManual),
             "moe_experts ", rc.model.moe_experts, ": mixture-of-experts models train with data "
             "parallelism only for now (--tp 1 --pp 1 --parallel manual), got --tp ", c.tp, " --pp ",
             c.pp, " --parallel ", c.parallel == LayoutChoice::kManual ? "manual" : "auto");
  LOOM_CHECK(!c.data_dir.empty(), "missing required field data_dir (set train.data_dir in the config or pass --data_dir)");
  LOOM_CHECK(!c.out_dir.empty(), "missing required field out_dir (set train.out_dir in the config or pass --out_dir)");
  LOOM_CHECK(c.batch_size >= 1, "batch_size must be >= 1, got ", c.batch_size);
  LOOM_CHECK(c.seq_len >= 1 && c.seq_len <= rc.model.context_len, "seq_len must be in [1, context_len = ",
             rc.model.context_len, "], got ", c.seq_len);
  LOOM_CHECK(c.stride >= 1, "stride must be >= 1, got ", c.stride);
  LOOM_CHECK(c.grad_accum >= 1, "grad_accum must be >= 1, got ", c.grad_accum);
  // max_steps, warm-up and the learning rates: the schedule's own rules, checked now.
  LrSchedule{c.initial_lr, c.lr, c.min_lr, c.warmup_steps, c.max_steps}.validate();
  LOOM_CHECK(c.weight_decay >= 0, "weight_decay must be >= 0, got ", c.weight_decay);
  LOOM_CHECK(c.beta1 >= 0 && c.beta1 < 1, "beta1 must be in [0, 1), got ", c.beta1);
  LOOM_CHECK(c.beta2 >= 0 && c.beta2 < 1, "beta2 must be in [0, 1), got ", c.beta2);
  LOOM_CHECK(c.eps > 0, "eps must be > 0, got ", c.eps);
  LOOM_CHECK(c.max_norm >= 0, "max_norm must be >= 0, got ", c.max_norm);
  LOOM_CHECK(c.log_every >= 1, "log_every must be >= 1, got ", c.log_every);
  LOOM_CHECK(c.eval_freq >= 0, "eval_freq must be >= 0, got ", c.eval_freq);
  LOOM_CHECK(c.eval_iter >= 1, "eval_iter must be >= 1, got ", c.eval_iter);
  LOOM_CHECK(c.save_freq >= 0, "save_freq must be >= 0, got ", c.save_freq);
  LOOM_CHECK(c.keep_last >= 0, "keep_last must be >= 0, got ", c.keep_last);
  LOOM_CHECK(c.sample_freq >= -1, "sample_freq must be >= -1, got ", c.sample_freq);
  LOOM_CHECK(c.sample_tokens >= 1, "sample_tokens must be >= 1, got ", c.sample_tokens);
  LOOM_CHECK(c.top_k >= 0, "top_k must be >= 0, got ", c.top_k);
  LOOM_CHECK(c.temperature >= 0, "temperature must be >= 0, got ", c.temperature);
  LOOM_CHECK(c.threads >= 0, "threads must be >= 0, got ", c.threads);
  LOOM_CHECK(c.nproc >= 1, "nproc must be >= 1, got ", c.nproc);
  LOOM_CHECK(c.min_nproc >= 0 && c.min_nproc <= c.nproc, "min_nproc must be between 0 (not elastic) and nproc (",
             c.nproc, "), got ", c.min_nproc);
  LOOM_CHECK(c.zero >= 0 && c.zero <= 3, "zero must be 0, 1, 2 or 3, got ", c.zero);
  LOOM_CHECK(c.bucket_mb > 0, "bucket_mb must be > 0, got ", c.bucket_mb);
  LOOM_CHECK(c.grad_reduce == GradReduce::kF32 || c.zero == 0, "--grad_reduce bf16 needs --zero 0: ZeRO ",
             c.zero, " reduce-scatters the gradients in f32");
  LOOM_CHECK(c.tp >= 1, "tp must be >= 1, got ", c.tp);
  LOOM_CHECK(c.ep >= 1, "ep must be >= 1, got ", c.ep);
  LOOM_CHECK(c.ep == 1 || rc.model.is_moe(), "--ep ", c.ep, " splits the experts of a "
             "mixture-of-experts model, but this model is dense (moe_experts 0); set --moe_experts "
             "or use --ep 1");
  LOOM_CHECK(c.ep == 1 || rc.model.moe_experts % c.ep == 0, "--ep ", c.ep, " must divide "
             "moe_experts ", rc.model.moe_experts, " (each expert-parallel rank holds moe_experts / ep "
             "experts)");
  LOOM_CHECK(c.ep == 1 || c.min_nproc == 0, "--ep ", c.ep, " cannot be combined with an elastic "
             "--nproc MIN:MAX (min_nproc ", c.min_nproc, "): a restart with fewer ranks may leave a "
             "data-parallel size that ep does not divide");
  LOOM_CHECK(c.ep == 1 || c.ps == 0, "--ep ", c.ep, " cannot be combined with --ps ", c.ps,
             ": parameter-server workers each run the whole model");
  check_tp_divides_heads(rc.model, c.tp, "--tp");
  validate_sequence_parallel(c);
  LOOM_CHECK(c.pp >= 1 && c.pp <= rc.model.n_layer, "pp must be between 1 and n_layer (",
             rc.model.n_layer, "): every stage needs at least one block, got ", c.pp);
  LOOM_CHECK(c.zero != 2 || c.pp == 1, "--zero 2 cannot be combined with --pp ", c.pp,
             ": ZeRO-2 reduce-scatters each gradient bucket as soon as one backward has written "
             "it, but a pipeline stage sums its gradients over several micro-batches' backwards "
             "(split into B and W under zb1p); use --zero 1 with --pp");
  LOOM_CHECK(c.zero != 3 || (c.pp == 1 && c.parallel == LayoutChoice::kManual),
             "--zero 3 cannot be combined with ",
             c.pp > 1 ? "--pp " + std::to_string(c.pp) : std::string("--parallel auto"),
             ": ZeRO-3 gathers each block's parameters before its forward and its backward and "
             "reduce-scatters its gradients as one backward finishes it, but a pipeline stage "
             "runs several micro-batches' backwards (split into B and W under zb1p); use "
             "--zero 1 with --pp");
  LOOM_CHECK(c.zero != 3 || !rc.model.is_moe(), "--zero 3 cannot train a mixture-of-experts "
             "model (moe_experts ", rc.model.moe_experts, "): use --zero 2 or lower");
  LOOM_CHECK(c.micro_batches >= 0, "micro_batches must be >= 0, got ", c.micro_batches);
  const int m = c.micro_batches > 0 ? c.micro_batches : c.pp;
  LOOM_CHECK(c.batch_size % m == 0, "micro_batches ", m, c.micro_batches > 0 ? "" : " (= pp)",
             " must divide batch_size ", c.batch_size);
  const bool interleaved = c.schedule == pipeline::ScheduleKind::Interleaved;
  LOOM_CHECK(c.virtual_stages >= 1, "virtual_stages must be >= 1, got ", c.virtual_stages);
  LOOM_CHECK(interleaved || c.virtual_stages == 1, "virtual_stages ", c.virtual_stages,
             " needs schedule interleaved (schedule ", pipeline::name(c.schedule), " runs one chunk per rank)");
  LOOM_CHECK(!interleaved || (c.pp > 1 && c.virtual_stages > 1), "schedule interleaved needs pp > 1 "
             "and virtual_stages > 1 (chunks per rank), got pp ", c.pp, ", virtual_stages ", c.virtual_stages);
  LOOM_CHECK(!interleaved || m % c.pp == 0, "schedule interleaved: micro_batches ", m,
             " must be a multiple of pp ", c.pp, " (micro-batches go round the ranks in groups of pp)");
  LOOM_CHECK(c.pp * c.virtual_stages <= rc.model.n_layer, "pp x virtual_stages = ", c.pp, " x ",
             c.virtual_stages, " model chunks need n_layer >= ", c.pp * c.virtual_stages,
             " (at least one block each), got n_layer ", rc.model.n_layer);
  LOOM_CHECK(c.recompute != Recompute::kFull || c.pp == 1 ||
                 c.schedule != pipeline::ScheduleKind::ZeroBubbleH1,
             "recompute full cannot run with schedule zb1p: its weight-gradient pass needs every "
             "block's layer inputs, which full recomputation does not keep; use recompute "
             "selective, or schedule gpipe or 1f1b");
  // Under parallel auto the planner picks pp; the layout is checked again once it has.
  const bool pipelined = c.pp > 1 || c.parallel == LayoutChoice::kAuto;
  LOOM_CHECK(c.partition.empty() || pipelined, "partition '", c.partition,
             "' cuts pipeline stages: it needs pp > 1, got pp ", c.pp);
  LOOM_CHECK(c.partition.empty() || c.virtual_stages == 1, "partition '", c.partition,
             "' gives one block range per rank: not with interleaved (virtual_stages ",
             c.virtual_stages, ")");
  if (c.pp > 1) pipeline::parse_stage_blocks(c.partition, rc.model.n_layer, c.pp, "partition");
  LOOM_CHECK(!c.rebalance || pipelined,
             "rebalance re-partitions pipeline stages: it needs pp > 1, got pp ", c.pp);
  LOOM_CHECK(!c.rebalance || c.virtual_stages == 1,
             "rebalance re-partitions one stage per rank: not with interleaved (virtual_stages ",
             c.virtual_stages, ")");
  LOOM_CHECK(c.rebalance_steps >= 1, "rebalance_steps must be >= 1, got ", c.rebalance_steps);
  LOOM_CHECK(!c.rebalance || c.save_freq > 0, "rebalance re-partitions at a checkpoint: it needs "
             "save_freq > 0, got 0 (only the final save)");
  validate_ps(c);
}

// Text from the command line -> a JSON value of the same type as the field's default.
nlohmann::json parse_flag_value(const std::string& name, const std::string& text,
                                const nlohmann::json& like) {
  const std::string flag = "--" + name;
  if (like.is_string()) return text;
  if (like.is_boolean()) {
    if (text == "true" || text == "1") return true;
    if (text == "false" || text == "0") return false;
    LOOM_FAIL(flag, ": expected true or false, got '", text, "'");
  }
  char* end = nullptr;
  errno = 0;
  if (like.is_number_unsigned()) {  // e.g. seed: a JSON unsigned, or read_value refuses it
    const unsigned long long x = std::strtoull(text.c_str(), &end, 10);
    LOOM_CHECK(!text.empty() && text[0] != '-' && *end == '\0' && errno == 0, flag,
               ": expected a non-negative integer, got '", text, "'");
    return x;
  }
  if (like.is_number_integer()) {
    const long long x = std::strtoll(text.c_str(), &end, 10);
    LOOM_CHECK(!text.empty() && *end == '\0' && errno == 0, flag, ": expected an integer, got '", text, "'");
    return x;
  }
  const double x = std::strtod(text.c_str(), &end);
  LOOM_CHECK(!text.empty() && *end == '\0' && errno == 0, flag, ": expected a number, got '", text, "'");
  LOOM_CHECK(std::isfinite(x), flag, ": expected a finite number, got '", text, "'");
  return x;
}

// A float as the user wrote it: the shortest decimal that reads back as the same float (0.9f is
// recorded as 0.9, not as the double 0.8999999761581421).
nlohmann::json as_written(float x) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}
nlohmann::json as_written(kernels::MatmulPrecision p) { return kernels::precision_name(p); }
nlohmann::json as_written(pipeline::ScheduleKind k) { return pipeline::name(k); }
nlohmann::json as_written(Recompute r) { return recompute_name(r); }
nlohmann::json as_written(GradReduce g) { return grad_reduce_name(g); }
nlohmann::json as_written(LayoutChoice l) { return layout_choice_name(l); }
nlohmann::json as_written(ps::Mode m) { return ps::mode_name(m); }
nlohmann::json as_written(const Straggler& s) { return straggler_text(s); }
template <typename T>
nlohmann::json as_written(const T& x) {
  return x;
}

// Every field's default, the moe ones included (a dense model's JSON leaves them out).
nlohmann::json defaults_json() {
  nlohmann::json j = to_json(RunConfig{});
  j["model"] = all_fields_json(GPTConfig{});
  return j;
}

}  // namespace

nlohmann::json to_json(const RunConfig& c) {
  nlohmann::json train = nlohmann::json::object();
  visit_train_fields(c.train, [&](const char* name, const auto& member, const char*) {
    train[name] = as_written(member);
  });
  return {{"model", c.model}, {"train", train}};
}

RunConfig parse_run_config(const nlohmann::json& j, const std::string& origin) {
  try {
    LOOM_CHECK(j.is_object(), "expected a JSON object {\"model\": {..}, \"train\": {..}}");
    for (const auto& [key, v] : j.items())
      LOOM_CHECK(key == "model" || key == "train", "unknown section \"", key,
                 "\" (expected \"model\" and \"train\")");
    RunConfig rc;
    if (j.contains("model")) from_json(j["model"], rc.model);
    if (j.contains("train")) from_json_train(j["train"], rc.train);
    rc.model.validate();
    if (rc.train.seq_len == 0) rc.train.seq_len = rc.model.context_len;
    if (rc.train.stride == 0) rc.train.stride = rc.train.seq_len;
    validate(rc);
    return rc;
  } catch (const Error& e) {
    LOOM_FAIL(origin, ": ", e.what());
  }
}

nlohmann::json load_config_json(const std::string& path) {
  if (path.empty()) return nlohmann::json::object();
  std::ifstream in(path);
  LOOM_CHECK(in, path, ": cannot open config file");
  return read_json_file(path);
}

GPTConfig load_model_config(const std::string& path) {
  const nlohmann::json j = load_config_json(path);
  LOOM_CHECK(j.is_object() && j.contains("model"), path, ": no \"model\" section");
  try {
    GPTConfig c = j.at("model").get<GPTConfig>();
    c.validate();
    return c;
  } catch (const std::exception& e) {
    LOOM_FAIL(path, ": ", e.what());
  }
}

void apply_overrides(nlohmann::json& j, const std::map<std::string, std::string>& overrides) {
  if (!j.is_object()) return;  // parse_run_config reports it
  const nlohmann::json defaults = defaults_json();
  for (const auto& [name, text] : overrides) {
    const char* section = defaults["model"].contains(name)   ? "model"
                          : defaults["train"].contains(name) ? "train"
                                                             : nullptr;
    LOOM_CHECK(section != nullptr, "unknown flag --", name);
    j[section][name] = parse_flag_value(name, text, defaults[section][name]);
  }
}

std::vector<ConfigField> config_fields() {
  const nlohmann::json defaults = defaults_json();
  std::vector<ConfigField> out;
  auto text = [](const nlohmann::json& v) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_float()) {  // floats print as the user would write them: 6e-04, not 0.000600000028
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", v.get<double>());
      return buf;
    }
    return v.dump();
  };
  auto type = [](const nlohmann::json& v) -> std::string {
    return v.is_number_integer() ? "INT" : v.is_number() ? "FLOAT" : v.is_boolean() ? "BOOL" : "TEXT";
  };
  for (const auto& [name, v] : defaults["model"].items()) {
    const auto it = model_help().find(name);
    out.push_back({name, "model", type(v), text(v), it != model_help().end() ? it->second : "model field"});
  }
  TrainConfig c;
  visit_train_fields(c, [&](const char* name, const auto&, const char* help) {
    const auto& v = defaults["train"][name];
    out.push_back({name, "train", type(v), text(v), help});
  });
  return out;
}

}  // namespace loom
