// `loom bench ps --config C --data_dir D [--nproc 4 --ps 1 --straggler 1:3]`: the parameter-server
// modes side by side (all-reduce data parallelism on the workers alone, sync, ssp s=1 and s=3,
// async), without and with a straggler, each a real `loom train` job of the same token budget
// (sync `--steps` updates; async and ssp take workers x as many, one worker's batch each):
// tokens/s of the whole job (start-up included) and its ratio to sync's in the same run (under
// the same load), bytes moved per step, server 0's busy share (the part of its run not spent
// waiting for a push, from the job's ps_staleness record) and the val loss of its final checkpoint
// (`loom eval`). The straggler knob slows a ps worker only, so all-reduce dp has no slow row (its
// pace with one is sync's: every step waits for the slowest rank).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "command_registry.hpp"
#include "loom/config/train_config.hpp"
#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"

namespace {
namespace fs = std::filesystem;

struct Options {
  std::string config, data_dir, out_dir, straggler = "1:3";
  int nproc = 4, ps = 1, steps = 100, batch_size = 4, seq_len = 64;
};

struct Row {
  std::string name, flags;
  int64_t steps;
  int64_t bytes_per_step;
};

// Runs `cmd`, returning its output; an error with the output when it fails.
std::string run_command(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  LOOM_CHECK(p != nullptr, "bench ps: cannot run ", cmd);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  LOOM_CHECK(pclose(p) == 0, "bench ps: `", cmd, "` failed:\n", out);
  return out;
}

// Server 0's busy share from a job's metrics.jsonl, or a negative number when it has none
// (all-reduce dp).
double busy_share(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  double share = -1;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("type", "") == "ps_staleness") share = j.value("server_busy_share", -1.0);
  }
  return share;
}

int run(const Options& o) {
  const loom::GPTConfig model = loom::load_model_config(o.config);
  const loom::Straggler straggler = loom::parse_straggler(o.straggler, "--straggler");
  const int workers = o.nproc - o.ps;
  LOOM_CHECK(o.ps >= 1 && workers >= 1, "bench ps: --ps ", o.ps, " must be in [1, nproc ", o.nproc, ")");
  LOOM_CHECK(straggler.rank < 0 || (straggler.rank >= o.ps && straggler.rank < o.nproc),
             "--straggler ", o.straggler, ": rank ", straggler.rank, " is not a worker (ranks ", o.ps,
             "..", o.nproc - 1, ")");
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string out = o.out_dir.empty() ? "/tmp/loom-bench-ps-" + std::to_string(getpid()) : o.out_dir;
  fs::create_directories(out);
  const int64_t p = static_cast<int64_t>(model.num_params()) * 4;  // bytes of the parameters
  const std::string ps = " --nproc " + std::to_string(o.nproc) + " --ps " + std::to_string(o.ps);
  const int64_t many = static_cast<int64_t>(o.steps) * workers;
  const std::vector<Row> rows = {
      {"ps sync", ps, o.steps, 2 * workers * p},  // first: the others' tokens/s are compared to it
      {"all-reduce dp", " --nproc " + std::to_string(workers), o.steps, 2 * (workers - 1) * p},
      {"ps ssp s=1", ps + " --ps_mode ssp --staleness 1", many, 2 * p},
      {"ps ssp s=3", ps + " --ps_mode ssp --staleness 3", many, 2 * p},
      {"ps async", ps + " --ps_mode async", many, 2 * p}};
  std::printf("bench ps: %s, %d ranks (%d server(s), %d workers), batch %d x seq %d per worker step, "
              "%lld tokens per job\n",
              o.config.c_str(), o.nproc, o.ps, workers, o.batch_size, o.seq_len,
              static_cast<long long>(many) * o.batch_size * o.seq_len);
  std::printf("%-16s %-10s %12s %10s %14s %12s %10s\n", "mode", "straggler", "tokens/s",
              "vs sync", "MB per step", "server busy", "val loss");
  for (const bool slow : {false, true}) {
    double sync_tokens_per_s = 0;
    if (slow && straggler.rank < 0) continue;
    for (const Row& r : rows) {
      if (slow && r.name == "all-reduce dp") continue;  // the straggler knob slows a ps worker
      const std::string dir = out + "/" + (slow ? "slow-" : "") + std::to_string(&r - rows.data());
      fs::remove_all(dir);
      const std::string train = self + " train --config " + o.config + " --data_dir " + o.data_dir +
                                " --out_dir " + dir + r.flags + " --max_steps " +
                                std::to_string(r.steps) + " --warmup_steps " +
                                std::to_string(r.steps / 10) + " --batch_size " +
                                std::to_string(o.batch_size) + " --seq_len " +
                                std::to_string(o.seq_len) +
                                " --threads 1 --eval_freq 0 --sample_freq -1 --save_freq 0" +
                                (slow ? " --straggler " + o.straggler : "");
      const loom::Timer t;
      run_command(train);
      const double seconds = t.seconds();
      const std::string eval = run_command(self + " eval --checkpoint " + dir + " --data_dir " +
                                           o.data_dir + " --seq_len " + std::to_string(o.seq_len));
      double loss = 0;
      const size_t at = eval.rfind("| loss ");
      LOOM_CHECK(at != std::string::npos && std::sscanf(eval.c_str() + at, "| loss %lf", &loss) == 1,
                 "bench ps: no loss in `loom eval` output:\n", eval);
      const double tokens_per_s = static_cast<double>(many) * o.batch_size * o.seq_len / seconds;
      if (r.name == "ps sync") sync_tokens_per_s = tokens_per_s;
      const double busy = busy_share(dir);
      char ratio[16] = "-", share[16] = "-";
      if (sync_tokens_per_s > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", tokens_per_s / sync_tokens_per_s);
      if (busy >= 0) std::snprintf(share, sizeof share, "%.0f%%", 100 * busy);
      std::printf("%-16s %-10s %12.0f %10s %14.3f %12s %10.4f\n", r.name.c_str(),
                  slow ? o.straggler.c_str() : "none", tokens_per_s, ratio,
                  static_cast<double>(r.bytes_per_step) / 1e6, share, loss);
      std::fflush(stdout);
    }
  }
  return 0;
}

const bool registered = loom::cli::register_command(
    "bench ps",
    "Parameter servers: all-reduce dp, sync, ssp and async side by side, with a straggler: "
    "tokens/s, bytes per step, loss after the same tokens",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--config", o->config, "config file (model and train sections)")->required();
      app.add_option("--data_dir", o->data_dir, "token shards (loom tokenize)")->required();
      app.add_option("--nproc", o->nproc, "ranks per job")->capture_default_str();
      app.add_option("--ps", o->ps, "parameter servers among them")->capture_default_str();
      app.add_option("--straggler", o->straggler, "RANK:FACTOR of the slow rows; empty: none")
          ->capture_default_str();
      app.add_option("--steps", o->steps, "sync steps (async/ssp: x workers)")->capture_default_str();
      app.add_option("--batch_size", o->batch_size, "sequences per worker step")->capture_default_str();
      app.add_option("--seq_len", o->seq_len, "tokens per sequence")->capture_default_str();
      app.add_option("--out_dir", o->out_dir, "where the jobs write (default /tmp/loom-bench-ps-PID)");
      return [o] { return run(*o); };
    });

}  // namespace
