#include "bench/pipeline_bench.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "bench/bench_job.hpp"
#include "loom/core/check.hpp"
#include "loom/parallel/pipeline/gpt_stage_chunk.hpp"
#include "loom/parallel/pipeline/mlp_chunk.hpp"
#include "loom/parallel/pipeline/p2p_lanes.hpp"
#include "loom/parallel/pipeline/pipeline_training.hpp"
#include "loom/parallel/pipeline/runtime.hpp"
#include "loom/parallel/pipeline/simulator.hpp"
#include "loom/config/train_config.hpp"

namespace loom::pipeline {
namespace {

double theory(ScheduleKind k, int p, int m, int v) {
  switch (k) {
    case ScheduleKind::ZeroBubbleH1: return (p - 1.0) / (3.0 * m + p - 1);
    case ScheduleKind::Interleaved: return (p - 1.0) / (static_cast<double>(v) * m + p - 1);
    default: return (p - 1.0) / (m + p - 1.0);
  }
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) {
    if (!s.empty()) s += ',';
    s += std::to_string(x);
  }
  return s;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += ',';
    s += x;
  }
  return s;
}

// The stage a measurement runs: its chunks, and what the bench does around them.
class BenchStage {
 public:
  virtual ~BenchStage() = default;
  virtual std::vector<StageChunk*> chunks() = 0;
  virtual void start_step() = 0;  // zero the gradients, hand out the batch
  virtual double peak_mb() const = 0;  // peak activation memory so far
};

// The sum of the chunks' peak activation memory, in MiB.
double peak_mib(const std::vector<std::unique_ptr<MlpChunk>>& chunks) {
  size_t peak = 0;
  for (const auto& c : chunks) peak += c->peak_activation_bytes();
  return peak / 1048576.0;
}

class MlpBenchStage : public BenchStage {
 public:
  MlpBenchStage(const PipelineBenchOptions& o, const Schedule& s, int stage) {
    LOOM_CHECK(o.rows % s.micro_batches() == 0, "bench pipeline: --micro_batches ",
               s.micro_batches(), " does not divide --rows ", o.rows);
    LOOM_CHECK(s.stages() * s.virtual_stages() <= o.layers, "bench pipeline: ",
               s.stages() * s.virtual_stages(), " stages for ", o.layers, " layers");
    MlpSpec spec;
    spec.width = o.width;
    spec.rows = o.rows / s.micro_batches();
    spec.layers = o.layers;
    spec.micro_batches = s.micro_batches();
    owned_ = make_mlp_chunks(spec, s, stage);
  }
  std::vector<StageChunk*> chunks() override { return chunk_pointers(owned_); }
  void start_step() override {
    for (auto& c : owned_) c->zero_grad();
  }
  double peak_mb() const override { return peak_mib(owned_); }

 private:
  std::vector<std::unique_ptr<MlpChunk>> owned_;
};

class GptBenchStage : public BenchStage {
 public:
  // `part`: the model cut into stages x virtual_stages parts.
  GptBenchStage(const PipelineBenchOptions& o, const GPTConfig& cfg, const Partition& part,
                const Schedule& s, ScheduleKind kind, int stage)
      : model_(cfg, stage_shard(part, stage, 0, 1, s.virtual_stages())), o_(o) {
    for (int c = 0; c < s.virtual_stages(); ++c)
      chunks_.push_back(std::make_unique<GptStageChunk>(
          model_, workspace_, s.micro_batches(),
          ExecutorOptions{c, Recompute::kNone, kind == ScheduleKind::ZeroBubbleH1}));
    LOOM_CHECK(o.batch % s.micro_batches() == 0, "bench pipeline: --micro_batches ",
               s.micro_batches(), " does not divide --batch_size ", o.batch);
    model_.init_weights(1);
    Rng rng(7);  // the same tokens on every stage
    tokens_.resize(static_cast<size_t>(o.batch) * o.seq + 1);
    for (auto& t : tokens_) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
    inv_m_ = 1.0f / static_cast<float>(s.micro_batches());
  }
  std::vector<StageChunk*> chunks() override { return chunk_pointers(chunks_); }
  void start_step() override {
    model_.zero_grad();
    for (auto& c : chunks_) c->set_batch(tokens_.data(), tokens_.data() + 1, o_.batch, o_.seq, inv_m_);
  }
  // Activation memory is only ever allocated (sets and pooled buffers are kept for reuse), so
  // what the stage holds after the steps is its peak.
  double peak_mb() const override {
    size_t bytes = workspace_.bytes();  // the shared scratch
    for (const auto& c : chunks_) bytes += c->held_bytes();
    return bytes / 1048576.0;
  }

 private:
  GPT model_;
  ActivationWorkspace<float> workspace_;
  std::vector<std::unique_ptr<GptStageChunk>> chunks_;
  const PipelineBenchOptions& o_;
  std::vector<int32_t> tokens_;
  float inv_m_ = 1;
};

// One (m, schedule) measurement on this rank; collective over the job.
PipelineBenchRow measure(comm::Communicator& world, P2PLanes& lanes, BenchStage& stage,
                         const PipelineBenchOptions& o, const Schedule& schedule,
                         ScheduleKind kind) {
  const int P = world.size(), me = world.rank();
  const int m = schedule.micro_batches(), v = schedule.virtual_stages();
  const auto chunks = stage.chunks();
  std::vector<double> steps, bubbles;
  // Per chunk: total F, B, W seconds over the timed steps, and counts, for the simulator.
  std::vector<double> sum(3 * v, 0.0), count(3 * v, 0.0);
  std::vector<float> gathered(2 * static_cast<size_t>(P));
  for (int it = 0; it < o.warmup + o.steps; ++it) {
    stage.start_step();
    world.barrier();
    const StepTrace t = run_pipeline_step(schedule, me, chunks, lanes);
    std::fill(gathered.begin(), gathered.end(), 0.0f);
    gathered[2 * me] = static_cast<float>(t.end_s - t.start_s);
    gathered[2 * me + 1] = static_cast<float>(t.busy_s());
    world.allgather(gathered.data(), gathered.size());
    if (it < o.warmup) continue;
    double step = 0;
    for (int r = 0; r < P; ++r) step = std::max(step, static_cast<double>(gathered[2 * r]));
    double idle = 0;
    for (int r = 0; r < P; ++r) idle += 1.0 - gathered[2 * r + 1] / step;
    steps.push_back(step);
    bubbles.push_back(idle / P);
    for (const auto& s : t.spans) {
      const int slot = 3 * s.action.chunk + (s.action.op == Op::F ? 0 : s.action.op == Op::B ? 1 : 2);
      sum[slot] += s.end_s - s.start_s;
      count[slot] += 1;
    }
  }
  // Everyone's mean F/B/W per chunk (a fused backward counts as B, its W as 0) and peak memory.
  std::vector<float> costs(static_cast<size_t>(P) * (3 * v + 1), 0.0f);
  for (int i = 0; i < 3 * v; ++i)
    costs[static_cast<size_t>(me) * (3 * v + 1) + i] =
        static_cast<float>(count[i] > 0 ? sum[i] / (o.steps * m) : 0.0);
  costs[static_cast<size_t>(me) * (3 * v + 1) + 3 * v] = static_cast<float>(stage.peak_mb());
  world.allgather(costs.data(), costs.size());
  SimCosts sim;
  sim.chunk.assign(P, std::vector<ChunkCost>(v));
  PipelineBenchRow row;
  for (int r = 0; r < P; ++r) {
    const float* c = costs.data() + static_cast<size_t>(r) * (3 * v + 1);
    for (int k = 0; k < v; ++k) sim.chunk[r][k] = {c[3 * k], c[3 * k + 1], c[3 * k + 2], 0};
    row.peak_mb.push_back(c[3 * v]);
  }
  row.pp = P;
  row.micro_batches = m;
  row.virtual_stages = v;
  row.schedule = name(kind);
  row.step_s = parallel::median(steps);
  row.bubble = parallel::median(bubbles);
  row.theory = theory(kind, P, m, v);
  row.simulated = simulate(schedule, sim).bubble_fraction;
  return row;
}

}  // namespace

std::vector<PipelineBenchRow> run_pipeline_bench_rank(comm::Communicator& world,
                                                      const PipelineBenchOptions& o) {
  bool interleaved = false;
  std::vector<ScheduleKind> kinds;
  for (const auto& s : o.schedules) {
    kinds.push_back(parse_schedule_kind(s));
    interleaved = interleaved || kinds.back() == ScheduleKind::Interleaved;
  }
  P2PLanes lanes(world, interleaved);
  std::optional<GPTConfig> gpt;
  std::map<int, Partition> parts;  // by virtual stages: the model cut into P x v parts
  if (!o.config.empty()) {
    const nlohmann::json j = load_config_json(o.config);
    LOOM_CHECK(j.is_object() && j.contains("model"), o.config, ": no \"model\" section");
    gpt = j["model"].get<GPTConfig>();
    gpt->validate();
    LOOM_CHECK(o.seq >= 1 && o.seq <= gpt->context_len, "bench pipeline: --seq_len ", o.seq,
               " must be in [1, context_len ", gpt->context_len, "]");
  }
  std::vector<PipelineBenchRow> rows;
  for (int m : o.micro_batches)
    for (ScheduleKind k : kinds) {
      const int v = k == ScheduleKind::Interleaved ? o.virtual_stages : 1;
      const Schedule schedule = make_schedule(k, world.size(), m, v);
      std::unique_ptr<BenchStage> stage;
      if (gpt && parts.count(v) == 0) parts[v] = stage_partition(world, *gpt, world.size() * v, o.seq, 1);
      if (gpt) stage = std::make_unique<GptBenchStage>(o, *gpt, parts[v], schedule, k, world.rank());
      else stage = std::make_unique<MlpBenchStage>(o, schedule, world.rank());
      rows.push_back(measure(world, lanes, *stage, o, schedule, k));
    }
  return rows;
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PipelineBenchRow, pp, micro_batches, virtual_stages, schedule,
                                   step_s, bubble, theory, simulated, peak_mb)

std::string to_json_line(const std::vector<PipelineBenchRow>& rows) {
  return nlohmann::json(rows).dump();
}

std::vector<PipelineBenchRow> pipeline_bench_rows_from_json(const std::string& line) {
  const auto j = nlohmann::json::parse(line, nullptr, false);
  LOOM_CHECK(!j.is_discarded() && j.is_array(), "bench pipeline: bad result line: ", line);
  return j.get<std::vector<PipelineBenchRow>>();
}

void run_pipeline_bench(const PipelineBenchOptions& o, const std::string& program) {
  for (int p : o.pp) LOOM_CHECK(p >= 2, "bench pipeline: --pp values must be >= 2, got ", p);
  const bool gpt = !o.config.empty();
  for (int m : o.micro_batches)
    LOOM_CHECK(m >= 1 && (gpt ? o.batch : o.rows) % m == 0, "bench pipeline: --micro_batches ", m,
               " must divide ", gpt ? "--batch_size " : "--rows ", gpt ? o.batch : o.rows);
  for (const auto& s : o.schedules) parse_schedule_kind(s);  // names checked before launching
  if (gpt)
    std::printf("bench pipeline: GPT %s, %d sequences x %d tokens per step", o.config.c_str(),
                o.batch, o.seq);
  else
    std::printf("bench pipeline: dense model %d layers x width %d, %d rows per step", o.layers,
                o.width, o.rows);
  std::printf(" | 1 thread per rank | medians of %d steps after %d warm-up\n", o.steps, o.warmup);
  std::printf("%3s %4s %-14s %9s %8s %8s %10s  %s\n", "pp", "m", "schedule", "step_ms", "bubble",
              "theory", "simulated", "peak activations per stage (MiB)");
  for (int p : o.pp) {
    const std::vector<std::string> args = {
        "bench", "pipeline", "--pp", std::to_string(p), "--micro_batches",
        join(o.micro_batches), "--schedule", join(o.schedules), "--virtual_stages",
        std::to_string(o.virtual_stages), "--width", std::to_string(o.width), "--layers",
        std::to_string(o.layers), "--rows", std::to_string(o.rows), "--config", o.config,
        "--batch_size", std::to_string(o.batch), "--seq_len", std::to_string(o.seq), "--steps",
        std::to_string(o.steps), "--warmup", std::to_string(o.warmup)};
    const auto rows = pipeline_bench_rows_from_json(parallel::run_bench_job(
        p, args, program, detail::concat("bench pipeline: the ", p, "-rank job")));
    for (const PipelineBenchRow& r : rows) {
      std::string peaks;
      for (double mb : r.peak_mb) {
        char b[32];
        std::snprintf(b, sizeof b, "%s%.1f", peaks.empty() ? "" : " / ", mb);
        peaks += b;
      }
      const std::string sched =
          r.virtual_stages > 1 ? r.schedule + " v" + std::to_string(r.virtual_stages) : r.schedule;
      std::printf("%3d %4d %-14s %9.1f %7.1f%% %7.1f%% %9.1f%%  %s\n", r.pp, r.micro_batches,
                  sched.c_str(), r.step_s * 1e3, r.bubble * 100, r.theory * 100,
                  r.simulated * 100, peaks.c_str());
    }
  }
  std::fflush(stdout);
}

}  // namespace loom::pipeline
