// `loom tokenize`: text files -> llm.c token shards (train/val) + meta.json; or --encode/--decode
// for quick checks.
//
// Output <out>/train_000000.bin ..., <out>/val_000000.bin ..., <out>/meta.json. Files are cut
// into documents by --doc_sep (loom/data/text_corpus.hpp) and assigned to train or val by
// loom/data/train_val_split.hpp (never an empty val split). Shards are written into a staging
// folder inside <out> and moved into place only when all is done, so a failed run leaves an
// existing output as it was. The progress line goes to stderr only when it is a terminal.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/core/cpu_env.hpp"
#include "loom/core/timer.hpp"
#include "loom/data/shard_writer.hpp"
#include "loom/data/text_corpus.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/data/train_val_split.hpp"

namespace {
namespace fs = std::filesystem;

struct Options {
  std::vector<std::string> inputs;
  std::string out;
  std::string tokenizer = "gpt2";
  double val_fraction = 0.1;
  std::string doc_sep = "auto";
  size_t shard_tokens = 100'000'000;
  int threads = 0;
  std::string encode, decode;
  std::string encode_file;  // "-": stdin
};

// The whole of FILE's bytes, or of stdin for "-" (trailing newlines and all).
std::string read_text(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in, "--encode_file: cannot open ", path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Removes the staging folder unless the run got to the end.
struct Staging {
  fs::path path;
  ~Staging() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A carriage-return progress line, for terminals only (it would litter a log file).
void progress(uint64_t done, uint64_t total, uint64_t tokens, double seconds) {
  if (!::isatty(STDERR_FILENO)) return;
  const double mb = done / 1e6, rate = seconds > 0 ? mb / seconds : 0;
  const double eta = rate > 0 ? (total - done) / 1e6 / rate : 0;
  std::fprintf(stderr, "\rtokenize: %.1f / %.1f MB, %.2f MB/s, %llu tokens, ETA %.0f s   ", mb,
               total / 1e6, rate, static_cast<unsigned long long>(tokens), eta);
  std::fflush(stderr);
}

// Moves the staged shards and meta.json into `out`, first removing a previous run's shards.
void publish(const fs::path& staging, const fs::path& out) {
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    const bool ours = (name.starts_with("train_") || name.starts_with("val_")) &&
                      name.ends_with(".bin");
    if (e.is_regular_file() && (ours || name == "meta.json")) fs::remove(e.path());
  }
  for (const auto& e : fs::directory_iterator(staging)) {
    fs::rename(e.path(), out / e.path().filename());
  }
}

int run_corpus(const Options& o) {
  LOOM_CHECK(!o.inputs.empty(), "--input is required (text files or directories)");
  LOOM_CHECK(!o.out.empty(), "--out_dir is required (output directory)");
  LOOM_CHECK(o.val_fraction >= 0 && o.val_fraction < 1, "--val_fraction must be in [0, 1), got ",
             o.val_fraction);
  const auto doc_sep = loom::parse_document_separator(o.doc_sep);
  const auto tok = loom::load_tokenizer(o.tokenizer);
  const auto corpus = loom::list_text_files(o.inputs);
  fs::create_directories(o.out);
  Staging staging{fs::path(o.out) / (".tokenize-staging-" + std::to_string(::getpid()))};
  fs::create_directories(staging.path);
  loom::ShardSequenceWriter train(staging.path, "train", o.shard_tokens, tok->vocab_size());
  loom::ShardSequenceWriter val(staging.path, "val", o.shard_tokens, tok->vocab_size());
  loom::TrainValSplit split(train, val, o.val_fraction, tok->eot_id());
  uint64_t bytes_done = 0;
  loom::Timer timer;

  // Documents are encoded in batches of ~4 MB: threads get enough work, memory stays bounded.
  std::vector<std::string> batch;
  size_t batch_bytes = 0;
  auto encode_batch = [&] {
    const std::vector<std::string_view> views(batch.begin(), batch.end());
    const auto ids = loom::encode_documents(*tok, views);
    for (const auto& doc : ids) split.add(doc);
    batch.clear();
    batch_bytes = 0;
    progress(bytes_done, corpus.total_bytes, train.tokens() + val.tokens(), timer.seconds());
  };
  for (const auto& file : corpus.files) {
    const std::string text = loom::read_text_file(file);
    for (auto& doc : loom::split_documents(text, doc_sep)) {
      batch_bytes += doc.size();
      batch.push_back(std::move(doc));
    }
    bytes_done += text.size();
    if (batch_bytes >= (4u << 20)) encode_batch();
  }
  encode_batch();
  if (::isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");
  split.finish();
  const uint64_t train_docs = split.train_documents(), val_docs = split.val_documents();
  const auto train_paths = train.finish();
  const auto val_paths = val.finish();
  LOOM_CHECK(!train_paths.empty(), "no training documents in the input");

  nlohmann::json meta = {
      {"tokenizer", tok->name()},
      {"vocab_size", tok->vocab_size()},
      {"eot_id", tok->eot_id()},
      {"format", "llm.c shard: 256 x int32 header (20240520, 1, count), uint16 ids"},
      {"documents", {{"train", train_docs}, {"val", val_docs}}},
      {"tokens", {{"train", train.tokens()}, {"val", val.tokens()}}},
      {"shards", {{"train", train_paths.size()}, {"val", val_paths.size()}}},
      {"val_rule", "document i goes to val when floor((i+1)*f) > floor(i*f), f = val_fraction; "
                   "if that leaves val empty, the last document (of one document: its last "
                   "max(1, round(f*n)) tokens)"},
      {"val_fraction", o.val_fraction},
      {"document_rule", loom::describe(doc_sep) + "; ANSI escapes removed; each document "
                                                  "preceded by eot"},
      {"sources", corpus.files},
  };
  std::ofstream(staging.path / "meta.json") << meta.dump(2) << "\n";
  publish(staging.path, o.out);

  const double s = timer.seconds();
  std::cout << "tokenized " << corpus.files.size() << " files (" << corpus.skipped.size()
            << " skipped: links or binary), " << corpus.total_bytes / 1e6 << " MB in " << s
            << " s (" << corpus.total_bytes / 1e6 / s << " MB/s, " << tok->name()
            << " tokenizer)\n"
            << "train: " << train_docs << " documents, " << train.tokens() << " tokens, "
            << train_paths.size() << " shards\n"
            << "val:   " << val_docs << " documents, " << val.tokens() << " tokens, "
            << val_paths.size() << " shards\n"
            << "wrote " << o.out << "/{train_*,val_*}.bin and meta.json\n";
  return 0;
}

int run(const Options& o) {
  loom::set_num_threads(o.threads);
  LOOM_CHECK(o.encode.empty() || o.encode_file.empty(), "give --encode or --encode_file, not both");
  if (!o.encode.empty() || !o.encode_file.empty() || !o.decode.empty()) {
    const auto tok = loom::load_tokenizer(o.tokenizer);
    if (!o.encode.empty() || !o.encode_file.empty()) {
      const auto ids = tok->encode(o.encode_file.empty() ? o.encode : read_text(o.encode_file));
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
      std::cout << "\n";
    }
    if (!o.decode.empty()) {
      std::string spaced = o.decode;
      for (char& c : spaced) c = c == ',' ? ' ' : c;
      std::istringstream is(spaced);
      std::vector<int32_t> ids;
      std::string word;
      while (is >> word) {
        size_t used = 0;
        long v = -1;
        try {
          v = std::stol(word, &used);
        } catch (const std::exception&) {
        }
        LOOM_CHECK(used == word.size() && v >= 0 && v < tok->vocab_size(), "--decode: '", word,
                   "' is not a token id (expected integers 0..", tok->vocab_size() - 1, ")");
        ids.push_back(static_cast<int32_t>(v));
      }
      std::cout << tok->decode(ids) << "\n";
    }
    return 0;
  }
  return run_corpus(o);
}

const bool registered = loom::cli::register_command(
    "tokenize", "Turn UTF-8 text into llm.c token shards (train/val), or --encode/--decode text",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--input", o->inputs, "Text files or directories (recursive)");
      app.add_option("--out_dir", o->out, "Output directory for shards and meta.json");
      app.add_option("--tokenizer", o->tokenizer, "gpt2 or byte")->capture_default_str();
      app.add_option("--val_fraction", o->val_fraction, "Fraction of documents for validation")
          ->capture_default_str();
      app.add_option("--doc_sep", o->doc_sep,
                     "where documents end: auto (files with '%' lines at those lines, others at "
                     "blank lines), blank, file (one document per file), or any other text: lines "
                     "exactly equal to it")
          ->capture_default_str();
      app.add_option("--shard_tokens", o->shard_tokens, "Tokens per shard file")
          ->capture_default_str();
      app.add_option("--threads", o->threads, "Encoding threads (default: all cores)");
      app.add_option("--encode", o->encode, "Print the token ids of this text");
      app.add_option("--encode_file", o->encode_file,
                     "Print the token ids of this file's text, exactly (- = stdin)");
      app.add_option("--decode", o->decode, "Print the text of these ids (\"15496 995\")");
      return [o] { return run(*o); };
    });

}  // namespace
