// `loom tokenize` end to end: shards written by the CLI load back (TokenShard, WindowDataset) and
// decode to the documents; a failed run leaves an existing output alone.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "loom/data/token_shard.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/data/window_dataset.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

// Runs the CLI (bounded by `timeout`); returns its exit status and fills `output`.
int run_loom(const std::string& args, std::string* output = nullptr) {
  const std::string cmd = "timeout 60 " + std::string(LOOM_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  if (output) *output = out;
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<int32_t> read_split(const std::string& dir, const std::string& split, int vocab) {
  std::vector<int32_t> ids;
  for (const auto& path : find_shards(dir, split)) {
    const TokenShard shard(path, vocab);
    ids.insert(ids.end(), shard.tokens().begin(), shard.tokens().end());
  }
  return ids;
}

// Documents "doc 0" ... "doc N-1" (some Chinese, some coloured) in fortune format.
std::vector<std::string> write_corpus(const testing::TempDir& dir, int n) {
  std::vector<std::string> docs;
  std::ofstream f(dir / "corpus.txt");
  for (int i = 0; i < n; ++i) {
    docs.push_back("doc " + std::to_string(i) + (i % 3 ? " 萧炎 it's\n" : " plain\n"));
    f << (i % 5 == 0 ? "\x1b[33m" : "") << docs.back() << "%\n";
  }
  return docs;
}

std::string join_with_eot(const std::vector<std::string>& docs) {
  std::string s;
  for (const auto& d : docs) s += std::string(kEndOfText) + d;
  return s;
}

TEST(TokenizeCli, ShardsRoundTripSplitIntoTrainAndValByWholeDocuments) {
  testing::TempDir dir;
  const auto docs = write_corpus(dir, 40);
  for (const std::string tokenizer : {"byte", "gpt2"}) {
    const std::string out = dir / ("out-" + tokenizer);
    std::string log;
    ASSERT_EQ(run_loom("tokenize --tokenizer " + tokenizer + " --input " + dir.path() +
                           "/corpus.txt --out_dir " + out + " --val_fraction 0.25 --shard_tokens 100",
                       &log),
              0)
        << log;
    const auto tok = load_tokenizer(tokenizer);
    std::vector<std::string> train_docs, val_docs;
    for (int i = 0; i < 40; ++i) (i % 4 == 3 ? val_docs : train_docs).push_back(docs[i]);
    const auto train = read_split(out, "train", tok->vocab_size());
    EXPECT_EQ(tok->decode(train), join_with_eot(train_docs));
    EXPECT_EQ(tok->decode(read_split(out, "val", tok->vocab_size())), join_with_eot(val_docs));
    EXPECT_GT(find_shards(out, "train").size(), 1u);  // --shard-tokens 100 cut several shards
    std::ifstream meta_file(out + "/meta.json");
    const auto meta = nlohmann::json::parse(meta_file);
    EXPECT_EQ(meta["tokenizer"], tokenizer);
    EXPECT_EQ(meta["vocab_size"], tok->vocab_size());
    EXPECT_EQ(meta["eot_id"], tok->eot_id());
    EXPECT_EQ(meta["tokens"]["train"], train.size());
    EXPECT_EQ(meta["documents"]["val"], 10);
    const WindowDataset ds(find_shards(out, "train"), 8, 8, tok->vocab_size());
    EXPECT_EQ(ds.num_tokens(), train.size());
  }
}

TEST(TokenizeCli, FailedRunKeepsTheExistingOutput) {
  testing::TempDir dir;
  write_corpus(dir, 10);
  const std::string out = dir / "out";
  ASSERT_EQ(run_loom("tokenize --tokenizer byte --input " + dir.path() + "/corpus.txt --out_dir " + out),
            0);
  const auto before = read_split(out, "train", 257);
  std::string log;
  EXPECT_NE(run_loom("tokenize --tokenizer byte --input " + dir.path() + "/corpus.txt " +
                         dir.path() + "/missing.txt --out_dir " + out,
                     &log),
            0);
  EXPECT_NE(log.find("missing.txt"), std::string::npos) << log;
  EXPECT_EQ(read_split(out, "train", 257), before);
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(out)) entries += !e.path().empty();
  EXPECT_EQ(entries, 3u);  // train, val, meta.json: no staging folder left behind
}

TEST(TokenizeCli, PlainTextIsCutAtBlankLinesAndAlwaysGetsAValSplit) {
  testing::TempDir dir;
  std::ofstream(dir / "notes.txt") << "Copyright line one,\nline two.\n\nSecond paragraph.\n\n"
                                      "Third paragraph.\n";
  const std::string out = dir / "out";
  std::string log;
  ASSERT_EQ(run_loom("tokenize --tokenizer byte --input " + (dir / "notes.txt") + " --out " + out +
                         " --val-fraction 0.05",
                     &log),
            0)
      << log;
  EXPECT_EQ(log.find('\r'), std::string::npos) << "progress line written to a non-terminal";
  const auto tok = load_tokenizer("byte");
  EXPECT_EQ(tok->decode(read_split(out, "train", 257)),
            join_with_eot({"Copyright line one,\nline two.\n", "Second paragraph.\n"}));
  EXPECT_EQ(tok->decode(read_split(out, "val", 257)), join_with_eot({"Third paragraph.\n"}));
  EXPECT_NE(log.find("val:   1 documents"), std::string::npos) << log;

  // --doc_sep file: one document, split inside: its last 5% of tokens are val.
  ASSERT_EQ(run_loom("tokenize --tokenizer byte --input " + (dir / "notes.txt") + " --out " + out +
                         " --val-fraction 0.05 --doc_sep file",
                     &log),
            0)
      << log;
  const auto train = read_split(out, "train", 257), val = read_split(out, "val", 257);
  EXPECT_EQ(val.size(), 1u + 3u);  // eot + round(0.05 * 67 bytes)
  EXPECT_EQ(tok->decode(train).substr(kEndOfText.size()) + tok->decode(val).substr(kEndOfText.size()),
            "Copyright line one,\nline two.\n\nSecond paragraph.\n\nThird paragraph.\n");
  std::ifstream meta_file(out + "/meta.json");
  EXPECT_NE(nlohmann::json::parse(meta_file)["document_rule"].get<std::string>().find("one document per file"),
            std::string::npos);
  EXPECT_NE(run_loom("tokenize --input " + (dir / "notes.txt") + " --out " + out + " --doc_sep ''", &log), 0);
  EXPECT_NE(log.find("--doc_sep"), std::string::npos) << log;
}

TEST(TokenizeCli, EncodeAndDecodeFlags) {
  std::string out;
  ASSERT_EQ(run_loom("tokenize --encode 'Hello world'", &out), 0);
  EXPECT_EQ(out, "15496 995\n");
  ASSERT_EQ(run_loom("tokenize --decode '15496,995'", &out), 0);
  EXPECT_EQ(out, "Hello world\n");
  EXPECT_NE(run_loom("tokenize --decode '99999'", &out), 0);
  EXPECT_NE(out.find("--decode"), std::string::npos);
}

}  // namespace
}  // namespace loom
