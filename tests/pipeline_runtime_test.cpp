// The pipeline runtime end to end in real processes: for every schedule, the gradients and the
// loss of a dense-layer model pipelined over 2-4 ranks equal those of the whole model run
// sequentially in one process; a rank killed mid-step makes the others fail naming it.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "forked_ranks.hpp"
#include "loom/parallel/pipeline/mlp_chunk.hpp"
#include "loom/parallel/pipeline/p2p_lanes.hpp"
#include "loom/parallel/pipeline/runtime.hpp"

namespace loom::pipeline {
namespace {

MlpSpec small_spec(int micro_batches) {
  MlpSpec s;
  s.width = 24;
  s.rows = 3;
  s.layers = 12;
  s.micro_batches = micro_batches;
  return s;
}

// The whole model on one rank, micro-batches in order: the reference.
struct Sequential {
  explicit Sequential(const MlpSpec& spec) : chunk(spec, 0, spec.layers) {
    for (int mb = 0; mb < spec.micro_batches; ++mb) {
      chunk.forward(mb, nullptr, nullptr);
      chunk.backward(mb, nullptr, nullptr);
    }
  }
  MlpChunk chunk;
};

double max_rel_error(const float* got, const float* want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num = std::max(num, std::abs(static_cast<double>(got[i]) - want[i]));
    den = std::max(den, std::abs(static_cast<double>(want[i])));
  }
  return num / std::max(den, 1e-30);
}

// One rank of a pipelined job: builds its chunks (layers cut evenly over P x v virtual stages),
// runs two steps, compares each chunk's gradients (and the last one's loss) with the
// sequential model's. Returns 0 when they match.
int pipelined_rank(comm::Communicator& world, ScheduleKind kind, int m, int v) {
  const int P = world.size(), me = world.rank();
  const MlpSpec spec = small_spec(m);
  const Schedule schedule = make_schedule(kind, P, m, v);
  P2PLanes lanes(world, v > 1);
  const auto owned = make_mlp_chunks(spec, schedule, me);
  const auto chunks = chunk_pointers(owned);
  const Sequential ref(spec);
  const size_t per_layer = static_cast<size_t>(spec.width) * spec.width + spec.width;
  int bad = 0;
  for (int step = 0; step < 2; ++step) {
    for (auto& c : owned) c->zero_grad();
    run_pipeline_step(schedule, me, chunks, lanes);
    for (int c = 0; c < v; ++c) {
      const int first = first_layer_of(spec, schedule, me, c);
      const auto& got = owned[c]->grads();
      const double err =
          max_rel_error(got.data(), ref.chunk.grads().data() + per_layer * first, got.size());
      if (err > 1e-5) {
        std::fprintf(stderr, "%s stage %d chunk %d step %d: gradient error %g\n",
                     schedule.name().c_str(), me, c, step, err);
        ++bad;
      }
      if (owned[c]->activation_bytes() != 0) {
        std::fprintf(stderr, "stage %d chunk %d: activations left after the step\n", me, c);
        ++bad;
      }
      if (schedule.is_last(me, c) &&
          std::abs(owned[c]->loss() - ref.chunk.loss()) > 1e-6 * ref.chunk.loss()) {
        std::fprintf(stderr, "loss %.9g vs %.9g\n", owned[c]->loss(), ref.chunk.loss());
        ++bad;
      }
    }
  }
  return bad == 0 ? 0 : 1;
}

void expect_equivalent(ScheduleKind kind, int P, int m, int v = 1) {
  const auto out = testing::run_forked_ranks(
      P, 60, [&](comm::Communicator& c) { return pipelined_rank(c, kind, m, v); });
  for (int r = 0; r < P; ++r)
    EXPECT_EQ(out[r].exit_code, 0) << name(kind) << " P=" << P << " m=" << m << " v=" << v
                                   << " rank " << r << ": " << out[r].error;
}

TEST(PipelineRuntime, GPipeMatchesSequential) {
  expect_equivalent(ScheduleKind::GPipe, 2, 4);
  expect_equivalent(ScheduleKind::GPipe, 4, 3);
}

TEST(PipelineRuntime, OneFOneBMatchesSequential) {
  expect_equivalent(ScheduleKind::OneFOneB, 2, 5);
  expect_equivalent(ScheduleKind::OneFOneB, 3, 6);
  expect_equivalent(ScheduleKind::OneFOneB, 4, 8);
}

TEST(PipelineRuntime, ZeroBubbleH1MatchesSequential) {
  expect_equivalent(ScheduleKind::ZeroBubbleH1, 2, 4);
  expect_equivalent(ScheduleKind::ZeroBubbleH1, 4, 6);
}

TEST(PipelineRuntime, InterleavedMatchesSequential) {
  expect_equivalent(ScheduleKind::Interleaved, 2, 4, 2);
  expect_equivalent(ScheduleKind::Interleaved, 3, 6, 2);  // odd ring: a third lane class
  expect_equivalent(ScheduleKind::Interleaved, 4, 4, 3);
}

TEST(PipelineRuntime, SendsDoNotBlockEvenWhenTheTransportCannotBuffer) {
  // One 64-byte shm slot per channel: every send waits until its receiver takes it, so a
  // runtime whose sends blocked its stage (or shared a queue with its receives) would deadlock
  // where 1F1B sends an activation forward while a gradient comes back on the same link.
  setenv("LOOM_SHM_SLOTS", "1", 1);
  setenv("LOOM_SHM_SLOT_BYTES", "64", 1);
  expect_equivalent(ScheduleKind::OneFOneB, 4, 8);
  expect_equivalent(ScheduleKind::ZeroBubbleH1, 3, 6);
  expect_equivalent(ScheduleKind::Interleaved, 2, 4, 2);
  unsetenv("LOOM_SHM_SLOTS");
  unsetenv("LOOM_SHM_SLOT_BYTES");
}

// Stands in for a chunk and kills its process in the middle of a step.
class KillingChunk : public MlpChunk {
 public:
  using MlpChunk::MlpChunk;
  void forward(int mb, const float* in, float* out) override {
    if (mb == 2) raise(SIGKILL);
    MlpChunk::forward(mb, in, out);
  }
};

TEST(PipelineRuntime, AKilledStageMakesTheOthersFailNamingIt) {
  const int P = 3, m = 6;
  const auto out = testing::run_forked_ranks(
      P, 60,
      [&](comm::Communicator& world) {
        const MlpSpec spec = small_spec(m);
        const Schedule s = make_schedule(ScheduleKind::OneFOneB, P, m);
        P2PLanes lanes(world, false);
        const int me = world.rank();
        std::unique_ptr<MlpChunk> chunk =
            me == 1 ? std::make_unique<KillingChunk>(spec, 4, 8)
                    : std::make_unique<MlpChunk>(spec, me * 4, me * 4 + 4);
        run_pipeline_step(s, me, {chunk.get()}, lanes);
        return 0;
      },
      /*comm_timeout_s=*/3);
  EXPECT_EQ(out[1].exit_code, 128 + SIGKILL);
  for (int r : {0, 2}) {
    EXPECT_EQ(out[r].exit_code, 1) << out[r].error;
    EXPECT_NE(out[r].error.find("rank 1"), std::string::npos) << out[r].error;
    EXPECT_NE(out[r].error.find("recv"), std::string::npos) << out[r].error;
  }
}

// A stage that has failed abandons its lanes: a receive it had posted from a neighbour that is
// alive but will never send (it waits on the failed stage) ends at once, not after the timeout.
TEST(PipelineLanes, AbandonEndsAPostedReceiveAtOnce) {
  const double comm_timeout_s = 8, neighbour_silent_s = 4;
  const auto out = testing::run_forked_ranks(
      2, 60,
      [&](comm::Communicator& world) {
        P2PLanes lanes(world, false);
        if (world.rank() == 1) {  // alive and silent, then gone
          std::this_thread::sleep_for(std::chrono::duration<double>(neighbour_silent_s));
          return 0;
        }
        auto grad = std::make_shared<std::vector<float>>(16);
        std::shared_future<void> arrival = lanes.grad_in()->post_recv(grad);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the receive is waiting
        const auto start = std::chrono::steady_clock::now();
        lanes.abandon();
        arrival.wait();
        const double took =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        try {
          arrival.get();
          std::fprintf(stderr, "the abandoned receive completed\n");
          return 2;
        } catch (const Error& e) {
          if (std::string(e.what()).find("abandoned") == std::string::npos) {
            std::fprintf(stderr, "unexpected error: %s\n", e.what());
            return 3;
          }
        }
        if (took > 1.0) std::fprintf(stderr, "the abandoned receive took %.2f s to end\n", took);
        return took > 1.0 ? 4 : 0;
      },
      comm_timeout_s);
  EXPECT_EQ(out[0].exit_code, 0);
  EXPECT_EQ(out[1].exit_code, 0);
}

TEST(MlpChunk, BackwardMatchesFiniteDifferences) {
  // The test model's own gradients, in float with central differences (the pipeline tests
  // compare against its sequential run, so it must itself be right).
  MlpSpec spec = small_spec(2);
  spec.layers = 2;
  spec.width = 6;
  MlpChunk chunk(spec, 0, 2);
  for (int mb = 0; mb < 2; ++mb) {
    chunk.forward(mb, nullptr, nullptr);
    chunk.backward_input(mb, nullptr, nullptr);
    chunk.backward_weights(mb);
  }
  const std::vector<float> grads = chunk.grads();
  // Perturb weights through a fresh chunk with shifted parameters: recompute the loss.
  auto loss_with = [&](size_t i, float delta) {
    MlpChunk c(spec, 0, 2);
    c.params()[i] += delta;
    for (int mb = 0; mb < 2; ++mb) c.forward(mb, nullptr, nullptr);
    return c.loss();
  };
  for (size_t i : {size_t{0}, size_t{7}, size_t{35}, size_t{40}, size_t{50}, size_t{83}}) {
    const float h = 1e-2f;
    const double fd = (loss_with(i, h) - loss_with(i, -h)) / (2 * h);
    EXPECT_NEAR(grads[i], fd, 2e-3 * std::abs(fd) + 1e-5) << "parameter " << i;
  }
}

}  // namespace
}  // namespace loom::pipeline
