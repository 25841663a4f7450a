// The inference commands on a checkpoint trained by `loom train`: KV-cache generation equal to
// the no-cache path, batched prompts, `loom eval` on one and two ranks, int8 perplexity.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "infer_test_util.hpp"

namespace loom::testing {
namespace {

// "loss X | perplexity Y" from `loom eval`'s line.
std::pair<double, double> loss_and_ppl(const std::string& out) {
  std::smatch m;
  const std::regex re(R"(loss ([0-9.]+) \| perplexity ([0-9.]+))");
  if (!std::regex_search(out, m, re)) return {NAN, NAN};
  return {std::stod(m[1]), std::stod(m[2])};
}

size_t distinct_words(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> words;
  for (std::string w; in >> w;) words.insert(w);
  return words.size();
}

TEST(InferTrained, CachedGenerationEvalOnAnyWorldSizeAndInt8Perplexity) {
  TempDir dir;
  const std::string ckpt = train_tiny_gpt2(dir);
  const std::vector<std::string> prompts = {"The quick brown", "Knowledge is", "A journey of"};

  // Greedy, 40 new tokens: past the 32-token window, so the cache's crop is exercised too.
  std::vector<std::string> cached_lines;
  for (const auto& p : prompts) {
    const std::string args = "generate --checkpoint " + ckpt + " --prompt '" + p +
                             "' --temperature 0 --max_new_tokens 40 --print_ids";
    const Result cached = loom_cli(args), plain = loom_cli(args + " --no_cache");
    ASSERT_EQ(cached.rc, 0) << cached.out;
    ASSERT_EQ(plain.rc, 0) << plain.out;
    EXPECT_EQ(cached.out, plain.out) << "prompt " << p;
    EXPECT_GT(distinct_words(cached.out), 5u)
        << "a degenerate continuation would not test much: " << cached.out;
    cached_lines.push_back(cached.out);
  }
  // The three prompts batched: each line equals its prompt's own continuation.
  {
    std::ofstream f(dir / "prompts.txt");
    for (const auto& p : prompts) f << p << "\n";
  }
  const Result batched = loom_cli("generate --checkpoint " + ckpt + " --batch-prompts " +
                                  (dir / "prompts.txt") + " --temperature 0 --max-new-tokens 40 --print-ids");
  ASSERT_EQ(batched.rc, 0) << batched.out;
  EXPECT_EQ(batched.out, cached_lines[0] + cached_lines[1] + cached_lines[2]);

  // Evaluation: the same loss on one rank and on two (windows split over the ranks).
  const std::string eval = "eval --checkpoint " + ckpt + " --data_dir " + (dir / "data") + " --seq_len 32 --batch_size 2";
  const Result one = loom_cli(eval), two = loom_cli(eval + " --nproc 2 --threads 1");
  ASSERT_EQ(one.rc, 0) << one.out;
  ASSERT_EQ(two.rc, 0) << two.out;
  const auto [loss1, ppl1] = loss_and_ppl(one.out);
  const auto [loss2, ppl2] = loss_and_ppl(two.out);
  EXPECT_NEAR(loss1, loss2, 1e-5 * loss1) << one.out << two.out;
  EXPECT_NE(two.out.find("2 rank(s)"), std::string::npos) << two.out;
  EXPECT_LT(ppl1, 50.0) << "the model did not learn its text: " << one.out;

  // int8 weights: perplexity within 1% of f32 on the val split.
  const Result q = loom_cli(eval + " --quantize int8");
  ASSERT_EQ(q.rc, 0) << q.out;
  const auto [loss_q, ppl_q] = loss_and_ppl(q.out);
  EXPECT_NE(ppl_q, ppl1) << "int8 gave exactly the f32 figure: not quantised?";
  EXPECT_LT(std::fabs(ppl_q - ppl1) / ppl1, 0.01) << one.out << q.out;
  std::printf("val perplexity f32 %.4f, int8 %.4f (%+.3f%%)\n", ppl1, ppl_q, 100 * (ppl_q - ppl1) / ppl1);

  // Bad input: nothing to eval, unknown quantisation.
  EXPECT_NE(loom_cli(eval + " --split test").rc, 0);
  EXPECT_NE(loom_cli(eval + " --quantize int4").rc, 0);
  const Result gen_bad = loom_cli("generate --checkpoint " + ckpt + " --prompt x --quantize int8 --no_cache");
  EXPECT_NE(gen_bad.rc, 0);
}

}  // namespace
}  // namespace loom::testing
