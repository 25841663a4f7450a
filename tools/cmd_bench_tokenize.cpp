// `loom bench tokenize`: encodes the same documents with Loom's gpt2 tokenizer and with npm
// tiktoken (node, the reference) in one run; checks the ids are identical and prints MB/s for
// each and the ratio. Both sides encode document by document and are timed on encoding alone
// (no file reading, no process start).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "bench/tiktoken_reference.hpp"
#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/timer.hpp"
#include "loom/data/text_corpus.hpp"
#include "loom/data/tokenizer.hpp"

namespace {

struct Options {
  std::vector<std::string> inputs = {"/usr/share/games/fortunes"};
  std::vector<int> threads = {1, 2};
  int repeat = 3;
  std::string npm_dir = loom::default_npm_dir();
};

int run(const Options& o) {
  LOOM_CHECK(o.repeat > 0, "--repeat must be > 0");
  const auto corpus = loom::list_text_files(o.inputs);
  std::vector<std::string> docs;
  size_t bytes = 0;
  for (const auto& file : corpus.files) {
    for (auto& d : loom::split_documents(loom::read_text_file(file))) {
      bytes += d.size();
      docs.push_back(std::move(d));
    }
  }
  const std::vector<std::string_view> views(docs.begin(), docs.end());
  const double mb = bytes / 1e6;
  std::printf("text: %zu documents, %.2f MB from %zu files\n", docs.size(), mb,
              corpus.files.size());

  const auto tok = loom::load_tokenizer("gpt2");
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::pair<int, double>> loom_rates;
  for (const int t : o.threads) {
    loom::set_num_threads(t);
    double best = 1e30;  // best of --repeat: the machine is shared, the minimum is the signal
    for (int r = 0; r < o.repeat; ++r) {
      loom::Timer timer;
      ids = loom::encode_documents(*tok, views);
      best = std::min(best, timer.seconds());
    }
    loom_rates.emplace_back(t, mb / best);
  }
  double ref_best = 1e30;
  loom::ReferenceEncoding ref;
  for (int r = 0; r < o.repeat; ++r) {
    ref = loom::tiktoken_encode(views, o.npm_dir, 300);
    ref_best = std::min(ref_best, ref.seconds);
  }
  size_t tokens = 0, mismatched = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    tokens += ids[i].size();
    mismatched += ids[i] != ref.ids[i];
  }
  const double ref_rate = mb / ref_best;
  std::printf("tokens: %zu, ids identical: %s\n", tokens,
              mismatched == 0 ? "yes" : (std::to_string(mismatched) + " documents differ").c_str());
  std::printf("tiktoken (npm, node, 1 thread): %8.2f MB/s\n", ref_rate);
  for (const auto& [t, rate] : loom_rates) {
    std::printf("loom (%d thread%s):              %8.2f MB/s  (%.2fx tiktoken)\n", t,
                t == 1 ? " " : "s", rate, rate / ref_rate);
  }
  return mismatched == 0 ? 0 : 1;
}

const bool registered = loom::cli::register_command(
    "bench tokenize", "Compare Loom's gpt2 tokenizer with npm tiktoken: MB/s and identical ids",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--input", o->inputs, "Text files or directories")->capture_default_str();
      app.add_option("--threads", o->threads, "Thread counts to measure Loom with")
          ->capture_default_str();
      app.add_option("--repeat", o->repeat, "Runs per measurement (best is kept)")
          ->capture_default_str();
      app.add_option("--npm_dir", o->npm_dir, "node_modules holding tiktoken")
          ->capture_default_str();
      return [o] { return run(*o); };
    });

}  // namespace
