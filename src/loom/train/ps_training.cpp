#include "loom/train/ps_training.hpp"

#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/core/timer.hpp"
#include "loom/data/data_tokenizer.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/data/window_dataset.hpp"
#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/optim/grad_clip.hpp"
#include "loom/parallel/ps/parameter_server.hpp"
#include "loom/parallel/ps/ps_worker.hpp"
#include "loom/train/batch_loader.hpp"
#include "loom/train/checkpoint.hpp"
#include "loom/train/metrics_log.hpp"
#include "loom/train/preemption.hpp"
#include "loom/train/pretrained.hpp"
#include "loom/train/straggler_delay.hpp"

namespace loom {
namespace fs = std::filesystem;

namespace {

size_t whole_size(const std::vector<ParamInfo>& layout) {
  return layout.back().offset + layout.back().numel;
}

std::string rank_span(int first, int last) {
  return first == last ? "rank " + std::to_string(first)
                       : detail::concat("ranks ", first, "..", last);
}

// Each worker's data position and dropout stream, kept in a PS checkpoint's layout as
// "ps_workers": [{"epoch", "samples", "dropout_rng"}, ...] (the single `data` position is for
// the data-parallel layouts), so an async or ssp run resumes every worker where it was.
nlohmann::json worker_positions_json(const std::vector<ps::PushHeader>& workers) {
  nlohmann::json j = nlohmann::json::array();
  for (const ps::PushHeader& h : workers)
    j.push_back({{"epoch", h.data_epoch}, {"samples", h.data_samples}, {"dropout_rng", h.dropout_rng}});
  return j;
}

// Where each of `workers` workers starts: a fresh run's start, the checkpoint's "ps_workers"
// when it holds one per worker, else the checkpoint's single position for every worker.
std::vector<ps::PushHeader> worker_starts(const TrainConfig& c, const std::string& resume_dir,
                                          int workers) {
  ps::PushHeader start;
  start.dropout_rng = Rng(c.seed + 1).state();
  if (resume_dir.empty()) return std::vector<ps::PushHeader>(workers, start);
  const CheckpointState state = read_checkpoint_state(resume_dir);
  start.data_epoch = state.data.epoch;
  start.data_samples = state.data.samples;
  start.dropout_rng = state.dropout_rng;
  std::vector<ps::PushHeader> starts(workers, start);
  const nlohmann::json saved = state.layout.value("ps_workers", nlohmann::json::array());
  if (static_cast<int>(saved.size()) != workers) return starts;
  for (int w = 0; w < workers; ++w) {
    starts[w].data_epoch = saved[w].at("epoch").get<uint64_t>();
    starts[w].data_samples = saved[w].at("samples").get<uint64_t>();
    starts[w].dropout_rng = saved[w].at("dropout_rng").get<std::array<uint64_t, 4>>();
  }
  return starts;
}

// Server 0's view of the run: the console, the metrics log and the checkpoints.
class ServerReport : public ps::ServerEvents {
 public:
  // `resumed_step`: the checkpoint's step (the log's later entries are dropped), 0 for a new run.
  ServerReport(const RunConfig& cfg, int servers, int world, const std::string& tokenizer,
               int64_t resumed_step)
      : cfg_(cfg), servers_(servers), world_(world), tokenizer_(tokenizer) {
    const TrainConfig& c = cfg.train;
    fs::create_directories(c.out_dir);
    if (!c.log_file.empty())
      log_ = MetricsLog((fs::path(c.out_dir) / c.log_file).string(), resumed_step);
  }

  void updated(const ps::UpdateReport& r) override {
    const TrainConfig& c = cfg_.train;
    const double seconds = since_last_.seconds();
    since_last_ = Timer();
    const double tokens = static_cast<double>(r.batches) * c.batch_size * c.seq_len * c.grad_accum;
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld | loss %.4f | lr %.2e | norm %.2f%s | %.0f tok/s",
                  static_cast<long long>(r.step), static_cast<long long>(c.max_steps), r.loss, r.lr,
                  r.grad_norm, r.clipped ? " (clipped)" : "", tokens / seconds);
    std::cout << line << (r.worker >= 0 ? " | worker rank " + std::to_string(r.worker) : "")
              << std::endl;
    log_.train(r.step, r.loss, r.lr, r.grad_norm, tokens / seconds, elapsed_.seconds());
  }

  void worker_lost(int world_rank, int64_t step, const std::string& why) override {
    lost_.push_back(world_rank);
    std::cout << "ps: worker rank " << world_rank << " " << why << " (at step " << step
              << "); training goes on with the others" << std::endl;
  }

  void checkpoint(const ps::Snapshot& snap, bool final) override {
    const TrainConfig& c = cfg_.train;
    const Timer stall;
    CheckpointState s;
    s.step = snap.step;
    s.data = {snap.data.data_epoch, snap.data.data_samples};
    s.dropout_rng = snap.data.dropout_rng;
    s.world_size = world_;
    s.tokenizer = tokenizer_;
    s.config = to_json(cfg_);
    s.layout = {{"pp", 1}, {"dp", world_ - servers_}, {"tp", 1}, {"ps", servers_},
                {"ps_mode", ps::mode_name(c.ps_mode)},
                {"ps_workers", worker_positions_json(snap.workers)}};
    const auto layout = gpt_param_layout(cfg_.model);
    BufferCheckpointSource source(snap.params.data(), snap.m.data(), snap.v.data(), snap.step);
    const std::string dir = save_checkpoint(c.out_dir, s, layout, source);
    prune_checkpoints(c.out_dir, c.keep_last);
    log_.save(snap.step, stall.seconds());
    std::cout << "saved " << dir << (final ? "" : " (periodic)") << std::endl;
    if (snap.preempted)
      std::cout << "preempted by a signal: saved the checkpoint of step " << snap.step
                << "; continue with --resume auto" << std::endl;
  }

  void staleness(const ps::ParameterServer& server) {
    nlohmann::json lost = nlohmann::json::array();
    for (const int r : lost_) lost.push_back(r);
    log_.ps_staleness(server.step(),
                      {{"mode", ps::mode_name(cfg_.train.ps_mode)},
                       {"staleness", cfg_.train.staleness},
                       {"update_staleness", server.update_staleness().to_json()},
                       {"clock_staleness", server.clock_staleness().to_json()},
                       {"workers_lost", lost},
                       {"server_busy_share", server.busy_share()},
                       {"worker_wait_share", server.worker_wait_shares()}});
    std::cout << "ps: staleness of the " << server.update_staleness().total()
              << " applied gradients: at most " << server.clock_staleness().max()
              << " steps of the slowest worker, " << server.update_staleness().max()
              << " server updates" << (lost_.empty() ? "" : "; workers lost: " + lost.dump())
              << std::endl;
  }

 private:
  const RunConfig& cfg_;
  int servers_, world_;
  std::string tokenizer_;
  MetricsLog log_;
  Timer elapsed_, since_last_;
  std::vector<int> lost_;
};

// Under mpirun: whether a rank that dies leaves the others running. mpirun ends the whole job
// then unless it runs with --mca orte_enable_recovery 1, which it hands its ranks as
// OMPI_MCA_orte_enable_recovery.
bool mpirun_survives_lost_ranks() {
  const char* v = std::getenv("OMPI_MCA_orte_enable_recovery");
  if (v == nullptr) return false;
  const std::string value = v;
  return value == "1" || value == "true" || value == "t" || value == "yes" || value == "y" ||
         value == "enabled";
}

// Under mpirun a dropped worker that is still running (stopped, hung) holds the job: every
// rank's MPI_Finalize waits for it. Server 0 ends those on its host, as `loom launch` does.
void end_dropped_workers(const comm::Communicator& world, const ps::ParameterServer& server) {
  const comm::Hosts* hosts = world.hosts();
  for (const auto& [rank, pid] : server.dropped_workers()) {
    const bool here = hosts != nullptr && hosts->host_of[rank] == hosts->host_of[world.rank()];
    // pid 0: it never pushed; kill(pid, 0) fails: it is gone already.
    if (!here || pid <= 0 || kill(static_cast<pid_t>(pid), 0) != 0) continue;
    kill(static_cast<pid_t>(pid), SIGKILL);
    std::cout << "ps: killed worker rank " << rank << " (pid " << pid
              << "), dropped but still running, so that mpirun can end the job" << std::endl;
  }
}

ps::ServerConfig server_config(const TrainConfig& c) {
  ps::ServerConfig s;
  s.mode = c.ps_mode;
  s.staleness = c.staleness;
  s.max_steps = c.max_steps;
  s.save_freq = c.save_freq;
  s.schedule = {c.initial_lr, c.lr, c.min_lr, c.warmup_steps, c.max_steps};
  s.max_norm = c.max_norm;
  s.warmup_steps = c.warmup_steps;
  s.clip_during_warmup = c.clip_during_warmup;
  s.adamw = {c.beta1, c.beta2, c.eps, c.weight_decay};
  return s;
}

// The whole model's starting parameters: the checkpoint's, the pretrained ones, or the seed's.
std::vector<float> starting_params(const RunConfig& cfg, const std::vector<ParamInfo>& layout,
                                   const std::string& resume_dir, const std::string& init_from) {
  std::vector<float> whole(whole_size(layout));
  if (!resume_dir.empty()) {
    load_checkpoint_params(resume_dir, layout, whole.data());
  } else if (!init_from.empty()) {
    load_pretrained_params(read_pretrained(init_from), layout, whole.data());
  } else {
    GPT model(cfg.model);
    model.init_weights(cfg.train.seed);
    std::copy(model.params(), model.params() + whole.size(), whole.begin());
  }
  return whole;
}

void run_server(const RunConfig& cfg, comm::Communicator& world, const std::string& resume_dir,
                const std::string& init_from) {
  const TrainConfig& c = cfg.train;
  const int servers = c.ps;
  const bool main = world.rank() == 0;
  const auto layout = gpt_param_layout(cfg.model);
  const std::string tokenizer = data_tokenizer(c.data_dir);
  std::optional<ServerReport> report;
  const PreemptionWatch preemption;
  ps::ServerConfig server_cfg = server_config(c);
  server_cfg.stop_requested = [&preemption] { return preemption.signal() != 0; };
  if (main) {
    LOOM_CHECK(!resume_dir.empty() || !fs::exists(c.out_dir + "/latest"), c.out_dir,
               " already holds checkpoints (", c.out_dir,
               "/latest): pass --resume latest to continue them, or choose another --out_dir");
    report.emplace(cfg, servers, world.size(), tokenizer,
                   resume_dir.empty() ? 0 : read_checkpoint_state(resume_dir).step);
  }
  ps::ParameterServer server(world, servers, layout, server_cfg, report ? &*report : nullptr);
  const ps::ParamRange range = server.range();
  {
    const std::vector<float> whole = starting_params(cfg, layout, resume_dir, init_from);
    std::copy(whole.begin() + range.begin, whole.begin() + range.end, server.params());
  }
  if (!resume_dir.empty()) {
    const CheckpointState state = read_checkpoint_state(resume_dir);
    AdamW full(layout, {c.beta1, c.beta2, c.eps, c.weight_decay});
    load_checkpoint_optimizer(resume_dir, layout, full);
    std::copy(full.m() + range.begin, full.m() + range.end, server.optimizer().m());
    std::copy(full.v() + range.begin, full.v() + range.end, server.optimizer().v());
    server.set_step(state.step);
    if (main) std::cout << "resumed from " << resume_dir << " at step " << state.step << std::endl;
  }
  server.set_data_start(worker_starts(c, resume_dir, world.size() - servers));
  if (main) {
    std::cout << "ps: " << ps_roles(servers, world.size()) << ", mode " << ps::mode_name(c.ps_mode)
              << (c.ps_mode == ps::Mode::kSsp ? " staleness " + std::to_string(c.staleness) : "")
              << " | model: " << cfg.model.num_params() << " parameters | batch " << c.batch_size
              << " x " << c.grad_accum << " sequences per worker step" << std::endl;
    if (std::string(world.backend_name()) == "mpi" && c.ps_mode != ps::Mode::kSync &&
        !mpirun_survives_lost_ranks())
      std::cout << "ps: mpirun ends the whole job if a worker dies; run it with --mca "
                   "orte_enable_recovery 1 to go on without the worker" << std::endl;
    if (c.eval_freq > 0 || c.sample_freq > 0)
      std::cout << "ps: evaluation and samples are not run under --ps (loom eval --checkpoint "
                << c.out_dir << " evaluates the result)" << std::endl;
  }
  server.run();
  if (report) report->staleness(server);
  if (main && std::string(world.backend_name()) == "mpi") end_dropped_workers(world, server);
}

void run_worker(const RunConfig& cfg, comm::Communicator& world, const std::string& resume_dir) {
  const TrainConfig& c = cfg.train;
  const int servers = c.ps, workers = world.size() - servers, w = world.rank() - servers;
  const std::string tokenizer_name = data_tokenizer(c.data_dir);
  const auto tokenizer = load_tokenizer(tokenizer_name);
  LOOM_CHECK(tokenizer->vocab_size() <= cfg.model.vocab_size, "vocab_size ", cfg.model.vocab_size,
             " is smaller than the vocabulary of the data's tokenizer (", tokenizer_name, ": ",
             tokenizer->vocab_size(), ")");
  const WindowDataset data(find_shards(c.data_dir, "train"), c.seq_len, c.stride,
                           cfg.model.vocab_size);
  BatchLoader loader(data, c.batch_size, c.seq_len, w, workers, c.seed);
  Rng dropout_rng(c.seed + 1);
  if (!resume_dir.empty()) {
    const ps::PushHeader start = worker_starts(c, resume_dir, workers)[w];
    loader.set_position({start.data_epoch, start.data_samples});
    dropout_rng.set_state(start.dropout_rng);
  }
  GPT model(cfg.model);
  ModelRunner<float> runner(model, {0, c.recompute, /*split_backward=*/false});
  const size_t n = model.num_params();
  const size_t tokens = static_cast<size_t>(c.batch_size) * c.seq_len;
  std::vector<int32_t> inputs(tokens), targets(tokens);
  const kernels::MatmulPrecision precision = kernels::resolve_precision(c.precision);
  const StragglerDelay straggler(c.straggler, world.rank());
  ps::PsWorker client(world, servers, n, c.ps_mode == ps::Mode::kSync);
  const PreemptionWatch preemption;  // a signal goes to the servers with the next push
  if (!client.pull(model.params())) return;
  for (;;) {
    const Timer compute;
    model.zero_grad();
    double loss = 0;
    {
      kernels::MatmulPrecisionScope autocast(precision);
      for (int a = 0; a < c.grad_accum; ++a) {
        loader.next(inputs.data(), targets.data());
        loss += runner.forward(inputs.data(), targets.data(), c.batch_size, c.seq_len,
                               /*train=*/true, &dropout_rng);
        runner.backward(1.0f / static_cast<float>(c.grad_accum));
      }
    }
    straggler.after(compute.seconds());
    ps::PushHeader h;
    h.loss = loss / c.grad_accum;
    h.grad_norm = std::sqrt(grad_sq_sum(model.grads(), n));
    const DataPosition pos = loader.position();
    h.data_epoch = pos.epoch;
    h.data_samples = pos.samples;
    h.dropout_rng = dropout_rng.state();
    h.signal = static_cast<uint32_t>(preemption.signal());
    if (!client.push_pull(model.grads(), h, model.params())) return;
  }
}

}  // namespace

std::string ps_roles(int servers, int world) {
  return rank_span(0, servers - 1) + (servers == 1 ? " server, " : " servers, ") +
         rank_span(servers, world - 1) + (world - servers == 1 ? " worker" : " workers");
}

void train_with_parameter_servers(const RunConfig& config, comm::Communicator& world,
                                  const std::string& resume_dir, const std::string& init_from) {
  check_ps_world(config.train, world.size());
  if (world.rank() < config.train.ps)
    run_server(config, world, resume_dir, init_from);
  else
    run_worker(config, world, resume_dir);
}

}  // namespace loom
