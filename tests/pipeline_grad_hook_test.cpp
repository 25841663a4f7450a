// The data-parallel hook under a pipeline (PipelineTraining::forward_backward's on_ready): on
// every stage and for every schedule, it hears of the stage's whole gradient, slice by slice from
// the buffer's end to its start (what GradientBuckets needs to overlap its all-reduces with
// backward), the tied wte last and only after its sum over the embedding group; and the hook of
// a whole backward gets more than one slice (a block at a time), so buckets launch while the
// earlier blocks are still computed.
#include <gtest/gtest.h>

#include <cstdio>
#include <utility>
#include <vector>

#include "forked_ranks.hpp"
#include "loom/core/rng.hpp"
#include "loom/parallel/mesh.hpp"
#include "loom/parallel/pipeline/pipeline_training.hpp"

namespace loom::pipeline {
namespace {

GPTConfig four_blocks() {
  GPTConfig c;
  c.vocab_size = 61;
  c.context_len = 16;
  c.n_layer = 4;
  c.n_head = 2;
  c.d_model = 32;
  return c;
}

// One stage of a pp-2 job: returns 0 when its hook heard the whole gradient in order.
int stage_rank(comm::Communicator& world, ScheduleKind kind, int v) {
  const GPTConfig cfg = four_blocks();
  parallel::Mesh mesh(world, parallel::mesh_shape(world.size(), 1, world.size()));
  const Partition partition =
      stage_partition(world, cfg, world.size() * v, 8, 1, v == 1 ? std::vector<int>{2, 2}
                                                                 : std::vector<int>{});
  GPT model(cfg, stage_shard(partition, mesh.coord().pp, 0, 1, v));
  model.init_weights(1);
  PipelineTraining pipe(mesh, model, kind, 4, v, Recompute::kNone);
  const size_t n = model.num_params();
  size_t wte_end = 0;
  for (const auto& p : model.layout())
    if (p.name == "transformer.wte.weight") wte_end = p.offset + p.numel;
  Rng data(3);
  std::vector<int32_t> tokens(4 * 8 + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(data.below(cfg.vocab_size));
  int bad = 0;
  for (int step = 0; step < 2; ++step) {
    std::vector<std::pair<size_t, size_t>> slices;
    model.zero_grad();
    Rng dropout(1);
    pipe.forward_backward(tokens.data(), tokens.data() + 1, 4, 8, 1.0f, dropout,
                          [&](size_t b, size_t e) { slices.push_back({b, e}); });
    size_t frontier = n;
    for (const auto& [b, e] : slices) {
      if (e != frontier) {
        std::fprintf(stderr, "stage %d: slice [%zu, %zu) after frontier %zu\n",
                     mesh.coord().pp, b, e, frontier);
        ++bad;
      }
      frontier = b;
    }
    if (frontier != 0 || slices.size() < 3) {
      std::fprintf(stderr, "stage %d: %zu slices end at %zu, not 0\n", mesh.coord().pp,
                   slices.size(), frontier);
      ++bad;
    }
    if (wte_end > 0 && (slices.empty() || slices.back() != std::pair<size_t, size_t>{0, wte_end})) {
      std::fprintf(stderr, "stage %d: the tied wte [0, %zu) is not the last slice\n",
                   mesh.coord().pp, wte_end);
      ++bad;
    }
  }
  return bad;
}

void expect_whole_gradient_in_order(ScheduleKind kind, int v = 1) {
  const auto out = testing::run_forked_ranks(
      2, 60, [&](comm::Communicator& c) { return stage_rank(c, kind, v); });
  for (int r = 0; r < 2; ++r)
    EXPECT_EQ(out[r].exit_code, 0) << name(kind) << " stage " << r << ": " << out[r].error;
}

TEST(PipelineGradHook, OneFOneBHandsTheWholeGradientInOrderWteLast) {
  expect_whole_gradient_in_order(ScheduleKind::OneFOneB);
}

TEST(PipelineGradHook, ZeroBubbleHandsTheWholeGradientInOrderWteLast) {
  expect_whole_gradient_in_order(ScheduleKind::ZeroBubbleH1);
}

TEST(PipelineGradHook, InterleavedHandsTheWholeGradientInOrderWteLast) {
  expect_whole_gradient_in_order(ScheduleKind::Interleaved, 2);
}

}  // namespace
}  // namespace loom::pipeline
