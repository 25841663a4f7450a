#include "loom/train/trainer.hpp"

#include <omp.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/data/data_tokenizer.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/data/window_dataset.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/generate.hpp"
#include "loom/model/gpt.hpp"
#include "loom/optim/grad_clip.hpp"
#include "loom/optim/lr_schedule.hpp"
#include "loom/parallel/data_parallel.hpp"
#include "loom/parallel/expert_parallel_group.hpp"
#include "loom/core/trace.hpp"
#include "loom/train/async_checkpoint.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/pipeline/pipeline_training.hpp"
#include "loom/parallel/pipeline/rebalance.hpp"
#include "loom/parallel/tensor_parallel.hpp"
#include "loom/config/parallel_plan.hpp"
#include "loom/train/batch_loader.hpp"
#include "loom/train/checkpoint.hpp"
#include "loom/train/gathered_checkpoint_source.hpp"
#include "loom/train/pretrained.hpp"
#include "loom/train/metrics_log.hpp"
#include "loom/train/step_progress.hpp"
#include "loom/train/straggler_delay.hpp"
#include "loom/train/preemption.hpp"

namespace loom {
namespace fs = std::filesystem;

namespace {

// The tokenizer named by <data_dir>/meta.json ({"tokenizer": "gpt2" | "byte", ...}); gpt2 when
// there is no meta.json.
LrSchedule make_schedule(const TrainConfig& c) {
  LrSchedule s{c.initial_lr, c.lr, c.min_lr, c.warmup_steps, c.max_steps};
  s.validate();
  return s;
}

// "n_layer: checkpoint 4, this run 2; ..." for the fields that differ.
std::string config_diff(const nlohmann::json& saved, const nlohmann::json& now) {
  std::string out;
  for (const auto& [k, v] : now.items()) {
    const std::string s = saved.contains(k) ? saved[k].dump() : "(absent)";
    if (s != v.dump()) out += (out.empty() ? "" : "; ") + k + ": checkpoint " + s + ", this run " + v.dump();
  }
  return out;
}

bool due(int64_t step, int64_t freq) { return freq > 0 && step % freq == 0; }

// " (12 steps lost since the checkpoint)": the steps the metrics log shows beyond `step`.
std::string steps_lost_note(const std::string& out_dir, const std::string& log_file, int64_t step) {
  if (log_file.empty()) return "";
  const int64_t last = last_logged_step((fs::path(out_dir) / log_file).string());
  return last >= step ? detail::concat(" (", last - step, last - step == 1 ? " step" : " steps",
                                       " lost since the checkpoint)")
                      : "";
}


size_t buffer_size(const std::vector<ParamInfo>& layout) {
  return layout.back().offset + layout.back().numel;
}

// This rank's piece of the model: its tp slice of its pipeline stage.
ModelShard rank_shard(const ParallelPlan& plan, parallel::Mesh& mesh,
                      const pipeline::Partition& partition) {
  ModelShard shard = pipeline::stage_shard(partition, mesh.coord().pp, mesh.coord().tp,
                                           plan.mesh.tp, plan.virtual_stages);
  shard.sequence_parallel = plan.sequence_parallel;
  return shard;
}

// Fault injection for the divergence drill: LOOM_FAULT_NAN_LOSS=<step>:<world rank> makes that
// rank's loss of that step (1-based) NaN, as if its micro-batches had diverged alone.
struct NanLossFault {
  int64_t step = -1;
  int world_rank = -1;

  static NanLossFault from_env() {
    const char* v = std::getenv("LOOM_FAULT_NAN_LOSS");
    if (v == nullptr) return {};
    NanLossFault f;
    char tail = 0;
    long long step = 0;
    const bool ok = std::sscanf(v, "%lld:%d%c", &step, &f.world_rank, &tail) == 2 && step >= 1 &&
                    f.world_rank >= 0;
    LOOM_CHECK(ok, "LOOM_FAULT_NAN_LOSS=", v, ": expected <step>:<world rank>, e.g. 3:1");
    f.step = step;
    return f;
  }
  bool hits(int64_t s, int rank) const { return s == step && rank == world_rank; }
};

}  // namespace

struct Trainer::Impl {
  RunConfig cfg;
  ParallelPlan plan;
  std::unique_ptr<parallel::Mesh> mesh;
  std::unique_ptr<parallel::CommTensorParallelGroup> tp;  // the model's tp group (none at tp 1)
  std::unique_ptr<parallel::CommExpertParallelGroup> ep;  // the experts' group (none at ep 1)
  int world_rank;
  int rank, world;  // data-parallel rank and size: the data and the loss are split over these
  pipeline::Partition partition;  // the stages' blocks
  GPT model;
  parallel::DataParallel dp;
  pipeline::PipelineTraining pipe;
  std::unique_ptr<pipeline::Rebalancer> rebalancer;  // --rebalance
  LrSchedule schedule;
  std::string tokenizer_name;
  std::unique_ptr<Tokenizer> tokenizer;
  WindowDataset train_data;
  std::optional<WindowDataset> val_data;
  BatchLoader loader;
  Rng dropout_rng;
  kernels::MatmulPrecision precision;  // what runs (bf16 falls back to f32 without AVX512_BF16)
  int64_t step = 0;
  bool resumed = false;
  std::vector<int32_t> inputs, targets;
  NanLossFault nan_fault = NanLossFault::from_env();
  StragglerDelay straggler{cfg.train.straggler, world_rank};
  AsyncCheckpointer saver{[](const std::string& dir, double s) {
    std::cout << detail::concat("saved ", dir, " (written in the background in ", s, " s)\n") << std::flush;
  }};

  // `reuse`: the mesh of `comm` already made (a stage re-built by --rebalance keeps it).
  Impl(const RunConfig& c, comm::Communicator& comm,
       std::unique_ptr<parallel::Mesh> reuse = nullptr)
      : cfg(c),
        plan(make_parallel_plan(c, comm.size())),
        mesh(reuse ? std::move(reuse) : std::make_unique<parallel::Mesh>(comm, plan.mesh)),
        tp(plan.mesh.tp > 1 ? std::make_unique<parallel::CommTensorParallelGroup>(mesh->tp())
                            : nullptr),
        ep(plan.mesh.ep > 1 ? std::make_unique<parallel::CommExpertParallelGroup>(mesh->ep())
                            : nullptr),
        world_rank(comm.rank()),
        rank(mesh->coord().dp),
        world(mesh->shape().dp),
        partition(pipeline::stage_partition(comm, c.model, plan.mesh.pp * plan.virtual_stages,
                                            c.train.seq_len, omp_get_max_threads(),
                                            plan.stage_blocks)),
        model(c.model, rank_shard(plan, *mesh, partition), tp.get(), ep.get()),
        dp(&mesh->dp(), model, adamw_params(),
           {plan.zero, plan.bucket_mb, plan.grad_reduce == GradReduce::kBF16}, &mesh->tp()),
        pipe(*mesh, model, plan.schedule, plan.micro_batches, plan.virtual_stages, plan.recompute),
        rebalancer(c.train.rebalance ? std::make_unique<pipeline::Rebalancer>(
                                           partition, c.train.rebalance_steps)
                                     : nullptr),
        schedule(make_schedule(c.train)),
        tokenizer_name(data_tokenizer(c.train.data_dir)),
        tokenizer(load_tokenizer(tokenizer_name)),
        train_data(find_shards(c.train.data_dir, "train"), c.train.seq_len, c.train.stride,
                   c.model.vocab_size),
        loader(train_data, c.train.batch_size, c.train.seq_len, rank, world, c.train.seed),
        dropout_rng(c.train.seed + 1),
        precision(plan.precision) {
    LOOM_CHECK(tokenizer->vocab_size() <= c.model.vocab_size, "vocab_size ", c.model.vocab_size,
               " is smaller than the vocabulary of the data's tokenizer (", tokenizer_name, ": ",
               tokenizer->vocab_size(), ")");
    if (c.train.eval_freq > 0) {
      try {
        val_data.emplace(find_shards(c.train.data_dir, "val"), c.train.seq_len, c.train.stride,
                         c.model.vocab_size);
      } catch (const Error& e) {
        LOOM_FAIL(e.what(), " (evaluation needs validation shards; --eval_freq 0 turns it off)");
      }
      LOOM_CHECK(val_data->size() > 0, c.train.data_dir, ": the validation shards hold fewer than ",
                 c.train.seq_len + 1, " tokens (one window)");
    }
    dp.load_params([&](float* params) { model.init_weights(c.train.seed, params); });
    const size_t n = static_cast<size_t>(c.train.batch_size) * c.train.seq_len;
    inputs.resize(n);
    targets.resize(n);
  }

  // Collective. Mean loss over the windows of eval_iter batches of batch_size x world (fewer if
  // `data` is small), spread evenly over the whole split: the same windows every time, and
  // representative of all of it rather than of its first documents. Window k is evaluated by
  // rank k % world; the per-window mean does not depend on the world size.
  double eval_loss(const WindowDataset& data) {
    const size_t B = cfg.train.batch_size, T = cfg.train.seq_len;
    const size_t count = std::min(data.size(), B * world * cfg.train.eval_iter);
    double sum = 0;
    std::vector<size_t> mine;
    kernels::MatmulPrecisionScope autocast(precision);
    for (size_t k = rank; k < count; k += world) mine.push_back(k * data.size() / count);
    // Every rank runs as many forwards as rank 0, which has the most windows (under ZeRO-3 each
    // forward gathers parameters with the whole group): one short of windows runs window 0
    // and leaves it out.
    const size_t most = (count + world - 1) / world;
    for (size_t first = 0; first < most; first += B) {
      const size_t rows = first < mine.size() ? std::min(B, mine.size() - first) : 0;
      for (size_t r = 0; r < std::max<size_t>(rows, 1); ++r)
        data.get(rows > 0 ? mine[first + r] : 0, inputs.data() + r * T, targets.data() + r * T);
      const double loss = pipe.forward_only(inputs.data(), targets.data(),
                                            static_cast<int>(std::max<size_t>(rows, 1)),
                                            static_cast<int>(T));
      if (rows > 0) sum += rows * loss;
    }
    sum = pipe.sum_over_stages(sum);  // the loss is on the last stage
    return dp.sum(sum) / static_cast<double>(count);
  }

  // Fills this rank's parameters from whole tensors: read(layout, params) writes the whole
  // model's, laid out by `layout` (straight into the model when this rank holds all of it).
  void load_whole_params(const std::function<void(const std::vector<ParamInfo>&, float*)>& read) {
    // Each rank keeps its pieces (of its stage) of the whole tensors.
    const auto whole_layout = gpt_param_layout(cfg.model);
    std::vector<float> whole(buffer_size(whole_layout));
    read(whole_layout, whole.data());
    dp.load_params([&](float* params) {
      parallel::scatter_whole(model.layout(), whole.data(), whole_layout, params);
    });
  }

  AdamWParams adamw_params() const {
    return {cfg.train.beta1, cfg.train.beta2, cfg.train.eps, cfg.train.weight_decay};
  }

  // Rank 0: writes a checkpoint of whole tensors (in the background with async_save), then
  // prunes the old ones. Returns its directory.
  std::string write_checkpoint(const CheckpointState& s, const std::vector<ParamInfo>& layout,
                               CheckpointSource& source) {
    const TrainConfig& c = cfg.train;
    if (c.async_save) return saver.save(c.out_dir, s, layout, source, c.keep_last);
    trace::Scope write("checkpoint write", "checkpoint");
    const std::string dir = save_checkpoint(c.out_dir, s, layout, source);
    prune_checkpoints(c.out_dir, c.keep_last);
    return dir;
  }

  // Collective over all ranks: "1, 3", the world ranks where `mine` holds.
  std::string ranks_where(bool mine) {
    std::vector<float> flags(mesh->world().size(), 0.0f);
    flags[world_rank] = mine ? 1.0f : 0.0f;
    mesh->world().allreduce(flags.data(), flags.size());
    std::string out;
    for (size_t r = 0; r < flags.size(); ++r)
      if (flags[r] > 0) out += (out.empty() ? "" : ", ") + std::to_string(r);
    return out;
  }

  // Collective over all ranks: whether any of them was asked to stop (`signal` > 0 on it).
  bool any_rank_stops(int signal) {
    if (mesh->world().size() == 1) return signal > 0;
    float flag = signal > 0 ? 1.0f : 0.0f;
    mesh->world().allreduce(&flag, 1);
    return flag > 0;
  }

  // Collective over the dp group: the mean of the ranks' MoE stats.
  moe::MoeStats mean_over_ranks(const moe::MoeStats& x) {
    return moe::MoeStats{dp.sum(x.load_balance_loss), dp.sum(x.z_loss), dp.sum(x.dropped_share),
                         dp.sum(x.max_over_mean_load)} *
           (1.0 / world);
  }

  void print_step(const StepStats& s, const std::string& progress) const {
    char line[256];
    std::snprintf(line, sizeof line, "step %lld/%lld | loss %.4f | lr %.2e | norm %.2f%s | %.0f tok/s",
                  static_cast<long long>(step), static_cast<long long>(cfg.train.max_steps), s.loss,
                  s.lr, s.grad_norm, s.clipped ? " (clipped)" : "", s.tokens_per_s);
    std::cout << line << moe_text(s.moe) << progress << std::endl;
  }

  // " | moe aux 0.0101 z 0.0004 dropped 3.1% load 1.42" (MoE models; "" for a dense one).
  std::string moe_text(const moe::MoeStats& x) const {
    if (!cfg.model.is_moe()) return "";
    char text[128];
    std::snprintf(text, sizeof text, " | moe aux %.4f z %.4f dropped %.1f%% load %.2f",
                  x.load_balance_loss, x.z_loss, 100 * x.dropped_share, x.max_over_mean_load);
    return text;
  }

  // The metrics log's MoE fields (MetricsLog::train's `extra`; empty for a dense model).
  nlohmann::json moe_fields(const moe::MoeStats& x) const {
    if (!cfg.model.is_moe()) return nlohmann::json::object();
    return {{"aux_loss", x.load_balance_loss}, {"z_loss", x.z_loss},
            {"dropped_share", x.dropped_share}, {"max_over_mean_load", x.max_over_mean_load}};
  }
};

Trainer::Trainer(const RunConfig& config, comm::Communicator& comm)
    : impl_(std::make_unique<Impl>(config, comm)) {}

Trainer::~Trainer() = default;

int64_t Trainer::steps_done() const { return impl_->step; }

void Trainer::resume(const std::string& checkpoint) {
  const std::string dir = resolve_checkpoint(checkpoint);
  const CheckpointState state = read_checkpoint_state(dir);
  adopt_rebalanced_partition(state.layout, dir);
  Impl& m = *impl_;
  check_same_tokenizer(state.tokenizer, dir, m.cfg.train.data_dir);
  const nlohmann::json model_now = m.cfg.model;
  LOOM_CHECK(state.config.is_object() && state.config.contains("model") && state.config["model"] == model_now,
             dir, ": the checkpoint's model config differs from this run's: ",
             config_diff(state.config.value("model", nlohmann::json::object()), model_now));
  m.load_whole_params([&](const std::vector<ParamInfo>& layout, float* params) {
    load_checkpoint_params(dir, layout, params);
  });
  // The checkpoint holds whole tensors: each rank keeps its pieces (of its stage).
  const auto whole_layout = gpt_param_layout(m.cfg.model);
  m.dp.load_full_optimizer([&](AdamW& opt) {
    AdamW full(whole_layout, m.adamw_params());
    load_checkpoint_optimizer(dir, whole_layout, full);
    parallel::scatter_whole(m.model.layout(), full.m(), whole_layout, opt.m());
    parallel::scatter_whole(m.model.layout(), full.v(), whole_layout, opt.v());
    opt.set_step_count(full.step_count());
  });
  m.loader.set_position(state.data);
  m.dropout_rng.set_state(state.dropout_rng);
  m.step = state.step;
  m.resumed = true;
  if (m.world_rank == 0)
    std::cout << "resumed from " << dir << " at step " << m.step
              << steps_lost_note(m.cfg.train.out_dir, m.cfg.train.log_file, m.step) << std::endl;
}

void Trainer::init_from(const std::string& path) {
  Impl& m = *impl_;
  const PretrainedModel pretrained = read_pretrained(path);
  check_pretrained_shape(pretrained, m.cfg.model);
  check_same_tokenizer(pretrained.tokenizer, pretrained.dir, m.cfg.train.data_dir);
  m.load_whole_params([&](const std::vector<ParamInfo>& layout, float* params) {
    load_pretrained_params(pretrained, layout, params);
  });
  if (m.world_rank == 0) std::cout << "initialised from " << pretrained.dir << std::endl;
}

StepStats Trainer::step() {
  Impl& m = *impl_;
  const TrainConfig& c = m.cfg.train;
  Timer timer;
  StepStats s;
  trace::set_step(m.step + 1);
  trace::Scope step_event("step", "step");
  m.model.zero_grad();
  // Forward and backward of all micro-batches at the run's precision; the weights are unchanged
  // until the optimizer step, so their bf16 copies are made once per step.
  std::optional<kernels::MatmulPrecisionScope> autocast(std::in_place, m.precision);
  const Timer compute;
  moe::MoeStats moe;
  for (int a = 0; a < c.grad_accum; ++a) {
    // Every stage reads the same batch (stage 0 its tokens, the last its targets).
    m.loader.next(m.inputs.data(), m.targets.data());
    // Gradient accumulation: the ranks communicate only during the last batch's backward (under
    // ZeRO-2 during every one: a rank keeps only its shard of the gradients).
    const bool last = a + 1 == c.grad_accum;
    trace::Scope schedule("pipeline schedule", "compute");
    s.loss += m.pipe.forward_backward(m.inputs.data(), m.targets.data(), c.batch_size, c.seq_len,
                                      1.0f / static_cast<float>(c.grad_accum), m.dropout_rng,
                                      m.dp.backward_hook(last), last);
    moe += m.pipe.moe_stats();
  }
  autocast.reset();
  m.straggler.after(compute.seconds());
  if (m.nan_fault.hits(m.step + 1, m.world_rank)) s.loss = std::nan("");
  // A non-finite loss is not thrown here: its rank's peers would wait for it in the next
  // collective. The gradients (non-finite too) are reduced as usual; the loss sum below makes
  // every rank see it, and all of them stop at the same check.
  const bool local_loss_finite = std::isfinite(s.loss);
  trace::Scope reduce("gradient sync", "comm");
  m.dp.reduce_gradients();
  reduce.end();
  const double sq_sum = m.pipe.sum_over_stages(m.dp.grad_sq_sum(m.pipe.norm_skip()));
  s.loss = m.pipe.sum_over_stages(s.loss);  // the loss is on the last stage
  s.loss = m.dp.sum(s.loss / c.grad_accum) / m.world;
  if (!std::isfinite(s.loss))
    LOOM_FAIL("the loss is ", s.loss, " at step ", m.step + 1, " (non-finite on world rank ",
              m.ranks_where(!local_loss_finite), "): training diverged (try a lower lr)");
  if (m.cfg.model.is_moe()) s.moe = m.mean_over_ranks(moe * (1.0 / c.grad_accum));
  s.grad_norm = std::sqrt(sq_sum);
  LOOM_CHECK(std::isfinite(s.grad_norm), "the gradient norm is ", s.grad_norm, " at step ",
             m.step + 1, ": training diverged (try a lower lr)");
  float scale = 1.0f;
  if (c.max_norm > 0 && clips_at(m.step, c.warmup_steps, c.clip_during_warmup)) {
    scale = clip_scale(s.grad_norm, c.max_norm);
    s.clipped = scale != 1.0f;
  }
  s.lr = m.schedule.at(m.step);
  trace::Scope optimizer("optimizer", "compute");
  m.dp.step(s.lr, scale);
  optimizer.end();
  ++m.step;
  step_event.end();
  trace::set_step(-1);
  s.seconds = timer.seconds();
  s.tokens_per_s = static_cast<double>(c.batch_size) * c.seq_len * c.grad_accum * m.world / s.seconds;
  return s;
}

EvalStats Trainer::evaluate() {
  Impl& m = *impl_;
  LOOM_CHECK(m.val_data.has_value(), "evaluate: no validation data (eval_freq is 0)");
  return {m.eval_loss(m.train_data), m.eval_loss(*m.val_data)};
}

std::string Trainer::sample() {
  Impl& m = *impl_;
  const TrainConfig& c = m.cfg.train;
  std::vector<int32_t> prompt = m.tokenizer->encode(c.sample_prompt);
  if (prompt.empty()) prompt.push_back(m.tokenizer->eot_id());
  // Seeded from (seed, step), not from a stream: sampling never changes the training run.
  Rng rng(c.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(m.step + 1)));
  const SampleOptions opts{c.temperature, c.top_k};
  const auto ids = m.pipe.generate(prompt, c.sample_tokens, opts, rng);
  return c.sample_prompt + m.tokenizer->decode(ids);
}

std::string Trainer::save() {
  Impl& m = *impl_;
  CheckpointState s;
  s.step = m.step;
  s.data = m.loader.position();
  s.dropout_rng = m.dropout_rng.state();
  s.world_size = m.mesh->shape().world();
  s.tokenizer = m.tokenizer_name;
  s.config = to_json(m.cfg);
  s.layout = {{"pp", m.cfg.train.pp}, {"dp", m.world}, {"tp", m.cfg.train.tp}};
  if (m.cfg.train.pp > 1) s.layout["stage_blocks"] = m.partition.blocks_text();
  if (m.rebalancer) s.layout["rebalanced"] = m.rebalancer->repartitioned();
  // The data-parallel replicas are identical: replica 0 saves (the others help when they hold
  // shards of the moments).
  if (m.rank != 0 && !m.dp.shards_moments()) return "";
  // Collective over the dp group (ZeRO's moments), the tp group, then the pp group: each whole
  // tensor assembled from the shards and the stages when the writer reaches it.
  const auto whole_layout = gpt_param_layout(m.cfg.model);
  GatheredCheckpointSource source(
      m.mesh->tp(), m.model.layout(),
      [&](CheckpointTensor kind, const ParamInfo& p, float* t) {
        return kind == CheckpointTensor::Param ? m.dp.param(p, t)
                                               : m.dp.moment(kind == CheckpointTensor::V, p, t);
      },
      m.dp.optimizer_step(),
      [&](const ParamInfo& p, float* t) { m.pipe.gather_stage_tensor(p, t); });
  if (m.world_rank == 0) return m.write_checkpoint(s, whole_layout, source);
  drain_checkpoint_source(whole_layout, source);
  return "";
}

void Trainer::run() {
  // --rebalance: training stops at the checkpoint where the stages are re-partitioned; each rank
  // re-builds its stage with the new blocks, loads that checkpoint, and training goes on.
  const Timer elapsed;  // the metrics' elapsed_s runs on across re-partitions
  while (run_until_repartition(elapsed)) {
    // What the old stage knows, copied out of it: rebuild_stage() destroys it.
    const RebuildNote note = [this] {
      Impl& m = *impl_;
      m.saver.wait();  // the checkpoint is on disk before any rank reads it
      m.mesh->world().barrier();
      return RebuildNote{m.rebalancer->next_blocks(), m.partition.blocks_text(), m.step,
                         m.world_rank == 0};
    }();
    rebuild_stage(note.blocks);
    if (note.main)
      std::cout << "rebalance: re-partitioned at the checkpoint of step " << note.step
                << ": blocks " << note.old_blocks << " -> " << impl_->partition.blocks_text()
                << std::endl;
    resume(impl_->cfg.train.out_dir + "/latest");
  }
}

void Trainer::rebuild_stage(const std::vector<int>& blocks) {
  // Nothing of the old Impl may be referenced past reset(): the config is copied and the mesh
  // (and its world) moved out first.
  RunConfig cfg = impl_->cfg;
  cfg.train.partition = pipeline::blocks_text(blocks);
  std::unique_ptr<parallel::Mesh> mesh = std::move(impl_->mesh);
  comm::Communicator& world = mesh->world();
  impl_.reset();  // the old stage's memory is free before the new one takes its own
  impl_ = std::make_unique<Impl>(cfg, world, std::move(mesh));
  impl_->rebalancer->adopted();
}

void Trainer::adopt_rebalanced_partition(const nlohmann::json& layout, const std::string& dir) {
  // The blocks to re-build with, read with the old stage in scope: rebuild_stage() destroys it.
  const std::optional<std::vector<int>> rebuild = [&]() -> std::optional<std::vector<int>> {
    Impl& m = *impl_;
    if (!m.rebalancer || !layout.is_object() || !layout.value("rebalanced", false) ||
        layout.value("pp", 0) != m.cfg.train.pp)
      return std::nullopt;
    std::vector<int> blocks = pipeline::parse_stage_blocks(
        layout.value("stage_blocks", ""), m.cfg.model.n_layer, m.cfg.train.pp,
        dir + "/state.json: layout.stage_blocks");
    if (blocks != m.partition.blocks()) return blocks;
    m.rebalancer->adopted();
    return std::nullopt;
  }();
  if (!rebuild) return;
  const bool main = impl_->world_rank == 0;
  rebuild_stage(*rebuild);
  if (main)
    std::cout << "rebalance: " << dir << " was re-partitioned by its run; its stages: "
              << impl_->partition.describe() << std::endl;
}

bool Trainer::run_until_repartition(const Timer& elapsed) {
  Impl& m = *impl_;
  const TrainConfig& c = m.cfg.train;
  const bool main = m.world_rank == 0;
  const std::string latest = c.out_dir + "/latest";
  LOOM_CHECK(m.resumed || !fs::exists(latest), c.out_dir, " already holds checkpoints (", latest,
             "): pass --resume latest to continue them, or choose another --out_dir");
  // Identical replicas are what makes identical updates identical models.
  m.dp.check_identical_replicas();
  MetricsLog log;
  if (main) {
    fs::create_directories(c.out_dir);
    if (!c.log_file.empty()) log = MetricsLog((fs::path(c.out_dir) / c.log_file).string(), m.step);
    std::cout << "model: " << m.cfg.model.num_params() << " parameters, " << m.cfg.model.n_layer
              << " layers, d_model " << m.cfg.model.d_model << " | data: " << m.train_data.num_tokens()
              << " train tokens, " << m.train_data.size() << " windows of " << c.seq_len
              << " | tokenizer " << m.tokenizer_name << " | " << m.world * c.tp * c.pp << " rank(s), global batch "
              << c.batch_size * m.world * c.grad_accum << " sequences"
              << (c.tp > 1 || c.pp > 1 ? " | dp " + std::to_string(m.world) + " x tp " +
                                             std::to_string(c.tp) + " x pp " + std::to_string(c.pp)
                                       : "")
              << (c.zero ? " | ZeRO-" + std::to_string(c.zero) : "") << " | "
              << kernels::precision_name(m.precision) << " matmuls" << std::endl;
    std::cout << m.plan.describe() << std::endl;
    if (c.pp > 1)
      std::cout << "pipeline: " << pipeline::name(c.schedule) << ", " << m.pipe.schedule().micro_batches()
                << " micro-batches of " << c.batch_size / m.pipe.schedule().micro_batches()
                << " sequences | " << m.partition.describe() << std::endl;
  }
  PreemptionWatch preemption;
  const StepProgress progress(m.step, elapsed.seconds(), c.max_steps, c.log_every);
  while (m.step < c.max_steps) {
    const StepStats s = step();
    // Every rank stops at the same step: the one where any of them has seen the signal.
    const bool stop_signal = m.any_rank_stops(preemption.signal());
    if (main) {
      if (progress.prints(m.step) || stop_signal)
        m.print_step(s, progress.suffix(m.step, elapsed.seconds()));
      log.train(m.step, s.loss, s.lr, s.grad_norm, s.tokens_per_s, elapsed.seconds(),
                m.moe_fields(s.moe));
    }
    if (m.rebalancer)
      m.rebalancer->after_step(m.mesh->world(), m.mesh->coord().pp,
                               m.mesh->shape().dp * m.mesh->shape().tp, m.pipe.compute_seconds());
    const bool last = m.step == c.max_steps;
    if (due(m.step, c.eval_freq) || (last && c.eval_freq > 0)) {
      trace::Scope eval_event("evaluate", "eval");
      const EvalStats e = evaluate();
      if (main) {
        char line[128];
        std::snprintf(line, sizeof line, "eval step %lld | train loss %.4f | val loss %.4f",
                      static_cast<long long>(m.step), e.train_loss, e.val_loss);
        std::cout << line << std::endl;
        log.eval(m.step, e.train_loss, e.val_loss);
      }
    }
    const int64_t sample_freq = c.sample_freq == 0 ? c.eval_freq : c.sample_freq;
    if (due(m.step, sample_freq)) {
      // Generation is collective over the tp (and pp) group: replica 0's ranks sample together
      // (under ZeRO-3 every replica: its forwards gather parameters over the dp group; the
      // samples are the same on all of them).
      const std::string text = m.rank == 0 || !m.dp.replica_runs_alone() ? sample() : "";
      if (main) std::cout << "sample: " << text << std::endl;
    }
    if (due(m.step, c.save_freq) || last || stop_signal) {
      Timer stall;
      trace::Scope save_event("save", "checkpoint");
      const std::string dir = save();
      save_event.end();
      if (main) {
        log.save(m.step, stall.seconds());
        if (!c.async_save) std::cout << "saved " << dir << std::endl;
      }
    }
    if (stop_signal && m.step < c.max_steps) {
      m.saver.wait();
      if (main)
        std::cout << "preempted by a signal: saved the checkpoint of step " << m.step
                  << "; continue with --resume auto" << std::endl;
      return false;
    }
    // --rebalance: the new partition takes over from the checkpoint just saved.
    if (due(m.step, c.save_freq) && !last && m.rebalancer && m.rebalancer->pending()) return true;
  }
  const std::string gathers = m.dp.gather_summary(elapsed.seconds());
  if (main && !gathers.empty()) std::cout << gathers << std::endl;
  m.saver.wait();
  return false;
}

}  // namespace loom
