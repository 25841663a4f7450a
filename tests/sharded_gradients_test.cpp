// ZeRO-2's gradient storage (parallel/sharded_gradients): the bucket plan, the pool's reuse,
// gradient accumulation through it, the checks on the backward's order, and that a rank really
// holds less than the whole gradient (bytes it reports and resident memory it grows by). The
// equivalence of whole ZeRO-2 runs with one rank is tested through the CLI (zero2_test.cpp).
#include "loom/parallel/sharded_gradients.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "forked_ranks.hpp"
#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/parallel/data_parallel.hpp"
#include "sanitizer_build.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

// Five blocks of 12.7k parameters: with 16 KiB buckets each block is a bucket of its own.
GPTConfig five_blocks(int vocab = 61) {
  GPTConfig c;
  c.vocab_size = vocab;
  c.context_len = 16;
  c.n_layer = 5;
  c.n_head = 2;
  c.d_model = 32;
  return c;
}
constexpr size_t kBucketBytes = 16 << 10;

std::unique_ptr<comm::Communicator> solo() {
  comm::CommOptions o;
  o.backend = "solo";
  return comm::communicator_from_env(o);
}

void forward_backward(GPT& m, uint64_t seed, float scale, const GPT::GradReadyFn& hook) {
  Rng rng(seed);
  const int B = 2, T = 8;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(m.config().vocab_size));
  for (auto& t : targets) t = static_cast<int32_t>(rng.below(m.config().vocab_size));
  ModelRunner<float> run(m);
  run.forward(tokens.data(), targets.data(), B, T, /*train=*/true);
  run.backward(scale, hook);
}

TEST(ShardedGradients, PlansBlockBucketsInAPoolOfTwoBuffers) {
  auto c = solo();
  GPT model(five_blocks());
  parallel::ShardedGradients g(*c, model.layout(), kBucketBytes);
  const auto parts = g.partitions();
  ASSERT_EQ(parts.size(), 6u);  // five blocks (ln_f with the last) and the embedding
  const size_t full = model.num_params() * sizeof(float);
  EXPECT_EQ(g.bytes(),
            parallel::ShardedGradients::planned_bytes(model.layout(), kBucketBytes, 1, 0));
  // On 3 ranks: two block buffers, the embedding and a third of the blocks.
  EXPECT_LT(parallel::ShardedGradients::planned_bytes(model.layout(), kBucketBytes, 3, 0),
            0.85 * full);
  // Tensors of buckets k and k + 2 share memory; the embedding has its own.
  std::set<const float*> distinct(g.storage().begin(), g.storage().end());
  EXPECT_LT(distinct.size(), model.layout().size());
  // With one bucket per buffer nothing is pooled: the whole gradient, as the flat buffer.
  parallel::ShardedGradients big(*c, model.layout(), size_t(1) << 30);
  EXPECT_EQ(big.bytes(), full);
}

// One rank: the average is the gradient itself, so the shard after two accumulated micro-batches
// is the flat buffer's sum, whichever buckets were pooled.
TEST(ShardedGradients, AccumulatesMicroBatchesThroughThePool) {
  auto c = solo();
  GPT flat(five_blocks()), bound(five_blocks());
  flat.init_weights(4);
  bound.init_weights(4);
  parallel::ShardedGradients g(*c, bound.layout(), kBucketBytes);
  bound.bind_gradients(g.storage());
  for (int step = 0; step < 2; ++step) {
    flat.zero_grad();
    bound.zero_grad();
    for (int micro = 0; micro < 2; ++micro) {
      forward_backward(flat, 10 * step + micro, 0.5f, {});
      g.begin_backward(/*last=*/micro == 1);
      forward_backward(bound, 10 * step + micro, 0.5f,
                       [&](size_t b, size_t e) { g.on_ready(b, e); });
    }
    g.finish();
    const auto shard = g.shard();
    auto parts = g.partitions();
    std::sort(parts.begin(), parts.end(),
              [](const auto& a, const auto& b) { return a.begin < b.begin; });
    ASSERT_EQ(shard.size(), parts.size());
    double diff = 0, norm = 0;
    for (size_t k = 0; k < parts.size(); ++k) {
      for (size_t i = parts[k].begin; i < parts[k].end; ++i) {
        const double x = shard[k][i - parts[k].begin], y = flat.grads()[i];
        diff += (x - y) * (x - y);
        norm += y * y;
      }
    }
    EXPECT_GT(norm, 0);
    EXPECT_LT(std::sqrt(diff / norm), 1e-6) << "step " << step;
    g.clear();
  }
}

TEST(ShardedGradients, RefusesSlicesOutOfOrderOrAcrossBuckets) {
  auto c = solo();
  GPT model(five_blocks());
  parallel::ShardedGradients g(*c, model.layout(), kBucketBytes);
  const size_t n = model.num_params();
  auto parts = g.partitions();  // backward order: the last block's bucket first
  g.begin_backward(true);
  EXPECT_THROW(g.on_ready(0, parts[0].begin), Error);  // does not end at the frontier
  // Two buckets reported as one slice: the second was written before its buffer was ready.
  EXPECT_THROW(g.on_ready(parts[1].begin, n), Error);
  g.finish();
  g.clear();
  // The shard is refused when the step's last backward was not marked last.
  g.begin_backward(false);
  for (const auto& p : parts) g.on_ready(p.begin, p.end);
  g.finish();
  EXPECT_THROW(g.shard(), Error);
}

// Three forked ranks run a step of a model with a large gradient (and tiny activations) under
// ZeRO-1 and ZeRO-2: ZeRO-2's rank must not hold the flat buffer, report fewer gradient bytes, and
// its resident memory must be lower by most of the difference.
TEST(ShardedGradients, ARankHoldsLessThanTheWholeGradient) {
  testing::TempDir dir;
  GPTConfig cfg = five_blocks(64);
  cfg.n_layer = 8;
  cfg.d_model = 256;
  cfg.n_head = 4;
  const size_t full = GPTConfig(cfg).num_params() * sizeof(float);
  auto run = [&](int zero) {
    const auto out = testing::run_forked_ranks(3, 120, [&](comm::Communicator& comm) {
      auto status_kb = [](const std::string& field) {
        std::ifstream f("/proc/self/status");
        for (std::string line; std::getline(f, line);)
          if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1));
        return -1.0;
      };
      const double before = status_kb("VmRSS");
      GPT model(cfg);
      model.init_weights(1);
      parallel::DataParallel dp(&comm, model, {}, {zero, 1.0});
      model.zero_grad();
      forward_backward(model, comm.rank(), 1.0f, dp.backward_hook(true));
      dp.reduce_gradients();
      dp.grad_sq_sum();
      dp.step(1e-3f, 1.0f);
      const double grown = (status_kb("VmRSS") - before) * 1024;
      std::ofstream(dir / ("rss." + std::to_string(zero) + "." + std::to_string(comm.rank())))
          << grown << " " << dp.gradient_bytes() << " " << (model.grads() == nullptr);
      return 0;
    });
    for (const auto& o : out) EXPECT_EQ(o.exit_code, 0) << o.error;
  };
  run(1);
  run(2);
  for (int r = 0; r < 3; ++r) {
    double grown1, grown2, bytes1, bytes2;
    bool freed1, freed2;
    std::ifstream(dir / ("rss.1." + std::to_string(r))) >> grown1 >> bytes1 >> freed1;
    std::ifstream(dir / ("rss.2." + std::to_string(r))) >> grown2 >> bytes2 >> freed2;
    EXPECT_FALSE(freed1);
    EXPECT_TRUE(freed2) << "rank " << r << ": the model still owns a flat gradient buffer";
    EXPECT_EQ(bytes1, full);
    // Pool of two blocks + embedding + a third of the blocks: about half here.
    EXPECT_LT(bytes2, 0.6 * full) << "rank " << r;
    // Resident memory is not the program's own under AddressSanitizer (shadow, quarantine).
    if (testing::kAddressSanitizer) continue;
    EXPECT_GT(grown1 - grown2, 0.7 * (bytes1 - bytes2))
        << "rank " << r << ": resident memory grew by " << grown1 << " bytes under ZeRO-1 and "
        << grown2 << " under ZeRO-2";
  }
}

}  // namespace
}  // namespace loom
