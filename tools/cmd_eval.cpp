// `loom eval`: validation loss and perplexity of a checkpoint on a token data set (a split of a
// `loom tokenize` directory). Collective like `loom train`: `--nproc N` runs it as N local ranks
// (shm), and under `loom launch` or mpirun each process scores its share of the windows.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include "command_registry.hpp"
#include "loom/comm/communicator.hpp"
#include "loom/comm/environment.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/data/data_tokenizer.hpp"
#include "loom/infer/checkpoint_model.hpp"
#include "loom/infer/evaluate.hpp"
#include "loom/launch/launcher.hpp"

namespace {


struct Options {
  std::string checkpoint;
  std::string data_dir;
  std::string split = "val";
  int seq_len = 0;
  int batch_size = 8;
  size_t max_windows = 0;
  std::string quantize = "none";
  int nproc = 1;
  int threads = 0;
};

// What each launched rank runs: this command without --nproc.
std::vector<std::string> rank_args(const Options& o) {
  return {"eval", "--checkpoint", o.checkpoint, "--data_dir", o.data_dir, "--split", o.split,
          "--seq_len", std::to_string(o.seq_len), "--batch_size", std::to_string(o.batch_size),
          "--max_windows", std::to_string(o.max_windows), "--quantize", o.quantize,
          "--threads", std::to_string(o.threads)};
}

int run(const Options& o) {
  LOOM_CHECK(o.split == "val" || o.split == "train", "--split: expected val or train, got '",
             o.split, "'");
  const auto weights = loom::infer::parse_weight_type(o.quantize, "--quantize");
  const auto env = loom::comm::detect_environment();
  if (o.nproc > 1 && env.launcher == loom::comm::Launcher::None)
    return loom::launch::launch_local(o.nproc, rank_args(o), {});
  int threads = o.threads;
  if (threads == 0 && env.local_world_size > 1)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / env.local_world_size);
  loom::set_num_threads(threads);

  auto ckpt = loom::infer::load_checkpoint_model(o.checkpoint);
  loom::check_same_tokenizer(ckpt.state.tokenizer, ckpt.dir, o.data_dir);
  const int seq_len = o.seq_len > 0 ? o.seq_len : ckpt.model->config().context_len;
  const loom::WindowDataset data(loom::find_shards(o.data_dir, o.split), seq_len, seq_len,
                                 ckpt.model->config().vocab_size);
  const auto comm = loom::comm::communicator_from_env();
  const auto r = loom::infer::evaluate(*ckpt.model, data, seq_len,
                                       {o.batch_size, o.max_windows, weights}, comm.get());
  if (!comm || comm->rank() == 0) {
    std::printf("eval %s | loss %.6f | perplexity %.4f | %lld tokens in %lld windows of %d | "
                "weights %s | %d rank(s)\n",
                o.split.c_str(), r.loss, r.perplexity, static_cast<long long>(r.tokens),
                static_cast<long long>(r.windows), seq_len, loom::infer::name(weights),
                comm ? comm->size() : 1);
  }
  return 0;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "eval", "Loss and perplexity of a checkpoint on a data split (any number of ranks)",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--checkpoint", o->checkpoint, "checkpoint directory, a `latest` file, or a run directory (its latest)")
          ->required();
      app.add_option("--data_dir", o->data_dir, "directory of token shards (loom tokenize)")
          ->required();
      app.add_option("--split", o->split, "val or train shards")->capture_default_str();
      app.add_option("--seq_len", o->seq_len, "window length; 0: the model's context_len")
          ->capture_default_str()->check(CLI::NonNegativeNumber);
      app.add_option("--batch_size", o->batch_size, "windows per forward")
          ->capture_default_str()->check(CLI::PositiveNumber);
      app.add_option("--max_windows", o->max_windows,
                     "score this many non-overlapping windows spread over the split; 0: all")
          ->capture_default_str();
      app.add_option("--quantize", o->quantize, "none (f32) or int8 weights")->capture_default_str();
      app.add_option("--nproc", o->nproc, "run as N local ranks (shared memory)")
          ->capture_default_str()->check(CLI::PositiveNumber);
      app.add_option("--threads", o->threads, "OpenMP/BLAS threads per rank; 0: cores / local ranks")
          ->capture_default_str();
      app.footer("  loom eval --checkpoint runs/tiny/latest --data_dir data/fortunes --nproc 2\n"
                 "  mpirun -np 2 loom eval --checkpoint runs/tiny/latest --data_dir data/fortunes");
      return [o] { return run(*o); };
    });
