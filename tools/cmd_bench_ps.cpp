// `loom bench ps --config C --data_dir D [--nproc 4 --ps 1 --straggler 1:3]`: the parameter-server
// modes side by side (all-reduce data parallelism on the workers alone, sync, ssp s=1 and s=3,
// async), without and with a straggler, each a real `loom train` job of the same token budget
// (sync `--steps` updates; async and ssp take workers x as many, one worker's batch each):
// tokens/s of the whole job (start-up included) and its ratio to sync's in the same run (under
// the same load), bytes moved per step, server 0's busy share (the part of its run not spent
// waiting for a push), the least and the most any worker spent waiting for the servers' replies
// (pulls, the ssp gate; both from the job's ps_staleness record) and the val loss of its final
// checkpoint (`loom eval`). The straggler is the same worker in every row: --straggler names its
// ps world rank, all-reduce dp (no servers) slows its rank minus --ps.
#include <algorithm>
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
  int first_worker;  // world rank of the first worker (the ps rows: after the servers)
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

// A job's ps_staleness record (metrics.jsonl), or null (all-reduce dp has none).
nlohmann::json staleness_record(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  nlohmann::json record;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("type", "") == "ps_staleness") record = j;
  }
  return record;
}

// "14%" of a share, "-" without one.
std::string percent(double share) {
  char text[16] = "-";
  if (share >= 0) std::snprintf(text, sizeof text, "%.0f%%", 100 * share);
  return text;
}

// "3-68%": the least and the most of the workers' wait shares; "-" without them.
std::string wait_range(const nlohmann::json& shares) {
  if (!shares.is_array() || shares.empty()) return "-";
  const auto [least, most] = std::minmax_element(shares.begin(), shares.end());
  char text[32];
  std::snprintf(text, sizeof text, "%.0f-%.0f%%", 100 * least->get<double>(), 100 * most->get<double>());
  return text;
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
      {"ps sync", ps, o.steps, 2 * workers * p, o.ps},  // first: the others are compared to it
      {"all-reduce dp", " --nproc " + std::to_string(workers), o.steps, 2 * (workers - 1) * p, 0},
      {"ps ssp s=1", ps + " --ps_mode ssp --staleness 1", many, 2 * p, o.ps},
      {"ps ssp s=3", ps + " --ps_mode ssp --staleness 3", many, 2 * p, o.ps},
      {"ps async", ps + " --ps_mode async", many, 2 * p, o.ps}};
  std::printf("bench ps: %s, %d ranks (%d server(s), %d workers), batch %d x seq %d per worker step, "
              "%lld tokens per job\n",
              o.config.c_str(), o.nproc, o.ps, workers, o.batch_size, o.seq_len,
              static_cast<long long>(many) * o.batch_size * o.seq_len);
  std::printf("%-16s %-10s %12s %10s %14s %12s %12s %10s\n", "mode", "straggler", "tokens/s",
              "vs sync", "MB per step", "server busy", "worker wait", "val loss");
  for (const bool slow : {false, true}) {
    double sync_tokens_per_s = 0;
    if (slow && straggler.rank < 0) continue;
    for (const Row& r : rows) {
      const std::string slow_rank = loom::straggler_text(
          {straggler.rank - o.ps + r.first_worker, straggler.factor});
      const std::string dir = out + "/" + (slow ? "slow-" : "") + std::to_string(&r - rows.data());
      fs::remove_all(dir);
      const std::string train = self + " train --config " + o.config + " --data_dir " + o.data_dir +
                                " --out_dir " + dir + r.flags + " --max_steps " +
                                std::to_string(r.steps) + " --warmup_steps " +
                                std::to_string(r.steps / 10) + " --batch_size " +
                                std::to_string(o.batch_size) + " --seq_len " +
                                std::to_string(o.seq_len) +
                                " --threads 1 --eval_freq 0 --sample_freq -1 --save_freq 0" +
                                (slow ? " --straggler " + slow_rank : "");
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
      const nlohmann::json record = staleness_record(dir);
      char ratio[16] = "-";
      if (sync_tokens_per_s > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", tokens_per_s / sync_tokens_per_s);
      std::printf("%-16s %-10s %12.0f %10s %14.3f %12s %12s %10.4f\n", r.name.c_str(),
                  slow ? o.straggler.c_str() : "none", tokens_per_s, ratio,
                  static_cast<double>(r.bytes_per_step) / 1e6,
                  percent(record.is_object() ? record.value("server_busy_share", -1.0) : -1).c_str(),
                  wait_range(record.is_object() ? record["worker_wait_share"] : nlohmann::json()).c_str(),
                  loss);
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
