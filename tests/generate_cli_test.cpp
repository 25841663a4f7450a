// `loom generate` on a checkpoint that learned to end its text with <|endoftext|>: it stops
// there unless --ignore_eos, streams a single prompt's tokens as they come (the streamed output
// equals the batched, non-streamed one), and --top_p composes with temperature.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "train_cli_util.hpp"

namespace loom::testing {
namespace {

constexpr int kEot = 256;  // the byte tokenizer's <|endoftext|>

// Trains a byte-level model on "abcdefgh<|endoftext|>" repeated; returns its checkpoint.
std::string train_eot_model(const TempDir& dir) {
  namespace fs = std::filesystem;
  const std::string data = dir / "data";
  fs::create_directories(data);
  std::vector<uint16_t> ids;
  for (int r = 0; r < 400; ++r) {
    for (char ch : std::string("abcdefgh")) ids.push_back(static_cast<uint16_t>(ch));
    ids.push_back(kEot);
  }
  write_shard(data + "/tiny_train_000000.bin", ids);
  write_shard(data + "/tiny_val_000000.bin", std::vector<uint16_t>(ids.begin(), ids.begin() + 90));
  std::ofstream(data + "/meta.json") << R"({"tokenizer": "byte"})";
  const nlohmann::json cfg = {
      {"model", {{"vocab_size", 257}, {"context_len", 32}, {"n_layer", 2}, {"n_head", 2}, {"d_model", 32}}},
      {"train",
       {{"data_dir", data}, {"out_dir", dir / "out"}, {"batch_size", 4}, {"seq_len", 32},
        {"max_steps", 60}, {"lr", 1e-2}, {"initial_lr", 1e-3}, {"min_lr", 1e-3},
        {"warmup_steps", 5}, {"eval_freq", 0}, {"save_freq", 60}, {"sample_freq", -1},
        {"threads", 1}}}};
  std::ofstream(dir / "config.json") << cfg.dump(2);
  const Result r = loom_cli("train --config " + (dir / "config.json"), 240);
  if (r.rc != 0) throw std::runtime_error("loom train failed:\n" + r.out);
  return dir / "out/latest";
}

std::vector<int> parse_ids(const std::string& line) {
  std::istringstream in(line);
  std::vector<int> v;
  for (int x; in >> x;) v.push_back(x);
  return v;
}

TEST(GenerateCli, StopsAtEndOfTextStreamsAndSamplesWithTopP) {
  TempDir dir;
  const std::string ckpt = train_eot_model(dir);
  const std::string gen = "generate --checkpoint " + ckpt + " ";

  // Past the end of text, the ids show the model's <|endoftext|> right after "defgh".
  const Result ids = loom_cli(gen + "--prompt abc --max_new_tokens 12 --ignore_eos --print_ids");
  ASSERT_EQ(ids.rc, 0) << ids.out;
  const auto v = parse_ids(ids.out);
  ASSERT_EQ(v.size(), 12u) << ids.out;
  ASSERT_EQ(v[5], kEot) << "the model did not learn to end its text: " << ids.out;
  EXPECT_EQ(std::string(v.begin(), v.begin() + 5), "defgh");

  // By default generation stops there, and <|endoftext|> is not printed.
  const Result stopped = loom_cli(gen + "--prompt abc --max_new_tokens 12");
  ASSERT_EQ(stopped.rc, 0) << stopped.out;
  EXPECT_EQ(stopped.out, "abcdefgh\n");
  const Result stopped_ids = loom_cli(gen + "--prompt abc --max_new_tokens 12 --print_ids --no_cache");
  EXPECT_EQ(parse_ids(stopped_ids.out), std::vector<int>(v.begin(), v.begin() + 5)) << stopped_ids.out;
  const Result go_on = loom_cli(gen + "--prompt abc --max_new_tokens 12 --ignore_eos");
  ASSERT_EQ(go_on.rc, 0) << go_on.out;
  EXPECT_EQ(go_on.out.rfind("abcdefgh<|endoftext|>", 0), 0u) << go_on.out;

  // The streamed single prompt equals the same prompt generated as a batch (printed at the end),
  // as ids (sampled) and as text (greedy).
  std::ofstream(dir / "prompts.txt") << "abc\n";
  const std::string sampled = "--max_new_tokens 40 --ignore_eos --temperature 2 --seed 3 --print_ids ";
  const Result streamed = loom_cli(gen + "--prompt abc " + sampled);
  const Result batched = loom_cli(gen + "--batch_prompts " + (dir / "prompts.txt") + " " + sampled);
  ASSERT_EQ(streamed.rc, 0) << streamed.out;
  ASSERT_EQ(batched.rc, 0) << batched.out;
  EXPECT_EQ(streamed.out, batched.out);
  const Result batched_text = loom_cli(gen + "--batch_prompts " + (dir / "prompts.txt") + " --max_new_tokens 12");
  ASSERT_EQ(batched_text.rc, 0) << batched_text.out;
  EXPECT_EQ(nlohmann::json::parse(batched_text.out)["completion"], "defgh");

  // Streaming: the first tokens reach a pipe long before a 10^6-token generation could end (the
  // reader stops after 20 bytes; the writer then dies of SIGPIPE).
  const Result early = run_bounded(
      "sh -c '" + std::string(LOOM_BINARY) + " " + gen +
          "--prompt abc --no_cache --ignore_eos --max_new_tokens 1000000 --print_ids | "
          "{ head -c 20 > /dev/null; echo first-bytes-arrived; }'",
      60);
  EXPECT_EQ(early.rc, 0) << early.out;
  EXPECT_NE(early.out.find("first-bytes-arrived"), std::string::npos) << early.out;

  // top_p 1 is no filter; a tiny top_p keeps only the most likely token: greedy. The defaults are
  // training's samples' (greedy).
  const Result t1 = loom_cli(gen + "--prompt abc " + sampled + "--top_p 1");
  EXPECT_EQ(t1.out, streamed.out);
  const Result nucleus = loom_cli(gen + "--prompt abc " + sampled + "--top_p 0.001");
  const Result greedy = loom_cli(gen + "--prompt abc --max_new_tokens 40 --ignore_eos --temperature 0 --print_ids");
  const Result defaults = loom_cli(gen + "--prompt abc --max_new_tokens 40 --ignore_eos --print_ids");
  ASSERT_EQ(greedy.rc, 0) << greedy.out;
  EXPECT_EQ(nucleus.out, greedy.out);
  EXPECT_EQ(defaults.out, greedy.out);
  EXPECT_NE(streamed.out, greedy.out) << "temperature 2 should leave the greedy path";
  const Result bad = loom_cli(gen + "--prompt abc --top_p 0");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--top_p must be in (0, 1], got 0"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace loom::testing
