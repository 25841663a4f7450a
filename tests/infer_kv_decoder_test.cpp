#include "loom/infer/kv_decoder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"
#include "loom/infer/cached_generate.hpp"
#include "loom/model/generate.hpp"
#include "loom/model/model_runner.hpp"

namespace loom::infer {
namespace {

GPTConfig tiny(bool qkv_bias = true) {
  GPTConfig c;
  c.vocab_size = 37;
  c.context_len = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 16;
  c.qkv_bias = qkv_bias;
  return c;
}

// Random weights with non-zero biases and LayerNorm parameters, so a mistake in any of them shows.
void randomize(GPT& m, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < m.num_params(); ++i) m.params()[i] = 0.3f * rng.normal();
}

std::vector<int32_t> ids(int n, int offset) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back((7 * i + offset) % 37);
  return v;
}

TEST(KVDecoder, PrefillLogitsEqualTheModelsForwardOnEveryRow) {
  GPT m(tiny());
  ModelRunner<float> run_m(m);
  randomize(m, 1);
  const auto prompt = ids(8, 3);
  run_m.forward(prompt.data(), nullptr, 1, 8, false);
  KVDecoder dec(m, WeightType::F32);
  dec.start(1, 8);
  // Prefill 5 rows, then 3 single rows: every row's logits equal the full forward's.
  std::vector<float> got;
  auto run = [&](int from, int to) {
    std::vector<int> seqs(to - from, 0);
    std::vector<uint8_t> want(to - from, 1);
    const float* l = dec.forward(seqs, std::span(prompt).subspan(from, to - from), want);
    got.insert(got.end(), l, l + (to - from) * 37);
  };
  run(0, 5);
  for (int t = 5; t < 8; ++t) run(t, t + 1);
  ASSERT_EQ(got.size(), 8u * 37);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], run_m.logits()[i], 1e-4) << i;
  EXPECT_EQ(dec.length(0), 8);
  EXPECT_THROW(run(0, 1), Error);  // the cache is full
}

TEST(KVDecoder, GreedyEqualsNoCacheGenerationIncludingBeyondTheWindow) {
  for (bool bias : {true, false}) {
    GPT m(tiny(bias));
    randomize(m, 2);
    KVDecoder dec(m, WeightType::F32);
    // Prompts shorter than, equal to and longer than the 8-token window; 14 new tokens slide.
    for (int n : {1, 3, 8, 12}) {
      Rng r1(0), r2(0);
      const auto prompt = ids(n, n);
      EXPECT_EQ(generate_cached(dec, {prompt}, 14, {0.0f, 0}, r1)[0],
                generate(m, prompt, 14, {0.0f, 0}, r2))
          << "prompt length " << n << ", qkv_bias " << bias;
    }
  }
}

TEST(KVDecoder, SamplingDrawsTheSameTokensAsNoCacheForOnePrompt) {
  GPT m(tiny());
  randomize(m, 3);
  KVDecoder dec(m, WeightType::F32);
  Rng r1(42), r2(42);
  const auto prompt = ids(4, 1);
  EXPECT_EQ(generate_cached(dec, {prompt}, 10, {0.9f, 5}, r1)[0],
            generate(m, prompt, 10, {0.9f, 5}, r2));
}

TEST(KVDecoder, BatchedPromptsGiveEachPromptsOwnContinuation) {
  GPT m(tiny());
  randomize(m, 4);
  KVDecoder dec(m, WeightType::F32);
  const std::vector<std::vector<int32_t>> prompts = {ids(2, 5), ids(7, 1), ids(1, 9), ids(10, 2)};
  Rng rng(0);
  const auto batched = generate_cached(dec, prompts, 9, {0.0f, 0}, rng);
  ASSERT_EQ(batched.size(), prompts.size());
  for (size_t s = 0; s < prompts.size(); ++s) {
    Rng r(0);
    EXPECT_EQ(batched[s], generate(m, prompts[s], 9, {0.0f, 0}, r)) << "prompt " << s;
  }
}

TEST(KVDecoder, EachBatchedSequenceStopsAtTheStopTokenAndTheOthersGoOn) {
  GPT m(tiny());
  randomize(m, 4);
  KVDecoder dec(m, WeightType::F32);
  const std::vector<std::vector<int32_t>> prompts = {ids(2, 5), ids(7, 1), ids(1, 9), ids(10, 2)};
  Rng rng(0);
  const auto full = generate_cached(dec, prompts, 9, {0.0f, 0}, rng);
  GenerateControl control;
  control.stop_token = full[1][3];  // sequence 1 ends at its 4th token at the latest
  std::vector<std::vector<int32_t>> streamed(prompts.size());
  control.on_token = [&](int s, int32_t t) { streamed[s].push_back(t); };
  const auto stopped = generate_cached(dec, prompts, 9, {0.0f, 0}, rng, control);
  EXPECT_EQ(streamed, stopped);
  GenerateControl stop_only;
  stop_only.stop_token = control.stop_token;
  for (size_t s = 0; s < prompts.size(); ++s) {
    Rng r(0);
    EXPECT_EQ(stopped[s], generate(m, prompts[s], 9, {0.0f, 0}, r, stop_only)) << "prompt " << s;
    const auto end = std::find(full[s].begin(), full[s].end(), control.stop_token);
    EXPECT_EQ(stopped[s], std::vector<int32_t>(full[s].begin(), end)) << "prompt " << s;
  }
  EXPECT_LE(stopped[1].size(), 3u);
}

TEST(KVDecoder, Int8LogitsStayCloseToF32AndItsTwoKernelsAgree) {
  GPTConfig c = tiny();
  c.d_model = 64;
  c.context_len = 24;
  GPT m(c);
  ModelRunner<float> run_m(m);
  m.init_weights(5);  // GPT-2 initialisation: the scale int8 is meant for
  const auto prompt = ids(24, 4);
  run_m.forward(prompt.data(), nullptr, 1, 24, false);
  KVDecoder dec(m, WeightType::Int8);
  dec.start(2, 24);
  // Sequence 0: one prefill of 24 rows (dequantised tiles + sgemm); sequence 1: the same tokens
  // one row at a time (the direct int8 dot products).
  const std::vector<int> seqs(24, 0);
  const std::vector<uint8_t> want(24, 1);
  const float* l = dec.forward(seqs, prompt, want);
  const std::vector<float> q(l, l + 24 * 37);
  double diff = 0, norm = 0;
  for (int t = 0; t < 24; ++t) {
    const int seq1 = 1;
    const uint8_t yes = 1;
    const float* row = dec.forward({&seq1, 1}, {&prompt[t], 1}, {&yes, 1});
    for (int v = 0; v < 37; ++v) {
      ASSERT_NEAR(row[v], q[t * 37 + v], 1e-4) << "row " << t;
      diff += std::pow(q[t * 37 + v] - run_m.logits()[t * 37 + v], 2);
      norm += std::pow(run_m.logits()[t * 37 + v], 2);
    }
  }
  EXPECT_GT(diff, 0.0);  // really quantised
  EXPECT_LT(std::sqrt(diff / norm), 0.02);
}

TEST(KVDecoder, RejectsBadInput) {
  GPT m(tiny());
  KVDecoder dec(m, WeightType::F32);
  EXPECT_THROW(dec.start(1, 9), Error);  // beyond context_len
  dec.start(2, 4);
  const std::vector<int> seqs = {0, 2};
  const std::vector<int32_t> toks = {1, 2};
  const std::vector<uint8_t> want = {1, 1};
  EXPECT_THROW(dec.forward(seqs, toks, want), Error);  // no sequence 2
  const std::vector<int> ok = {0, 1};
  const std::vector<int32_t> bad = {1, 37};
  EXPECT_THROW(dec.forward(ok, bad, want), Error);  // token outside the vocabulary
  EXPECT_EQ(dec.length(0), 0);                       // nothing was cached
  EXPECT_THROW(parse_weight_type("int4", "--quantize"), Error);
}

}  // namespace
}  // namespace loom::infer
