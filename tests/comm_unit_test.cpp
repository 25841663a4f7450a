// Pieces of the communication layer that need no second process.
#include <gtest/gtest.h>

#include <cstdlib>

#include "loom/comm/communicator.hpp"
#include "loom/comm/environment.hpp"
#include "loom/comm/reduce.hpp"
#include "loom/comm/shm/segment.hpp"
#include "error_of.hpp"

namespace loom::comm {
namespace {

TEST(CommBlocks, CoverTheBufferContiguouslyForAnyCountAndSize) {
  for (int n = 1; n <= 7; ++n)
    for (size_t count : {0, 1, 2, 5, 6, 7, 1001}) {
      size_t next = 0;
      for (int r = 0; r < n; ++r) {
        const Block b = block_of(count, n, r);
        EXPECT_EQ(b.offset, next);
        EXPECT_LE(b.count, count / n + 1);
        EXPECT_GE(b.count, count / n);
        next += b.count;
      }
      EXPECT_EQ(next, count);
    }
}

TEST(CommReduce, Bf16RoundsToNearestEvenAndSums) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(float_to_bf16(3.0f)), 3.0f);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.00390625f)), 1.0f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.01171875f)), 1.015625f);
  uint16_t a[3] = {float_to_bf16(1), float_to_bf16(-2), float_to_bf16(100)};
  const uint16_t b[3] = {float_to_bf16(2), float_to_bf16(2), float_to_bf16(28)};
  sum_into(a, b, 3, DType::BF16);
  EXPECT_EQ(bf16_to_float(a[0]), 3.0f);
  EXPECT_EQ(bf16_to_float(a[1]), 0.0f);
  EXPECT_EQ(bf16_to_float(a[2]), 128.0f);
}

TEST(CommSolo, UnlaunchedProcessGetsAWorkingSingleRankCommunicator) {
  auto comm = communicator_from_env();
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->rank(), 0);
  std::vector<float> x{1, 2, 3};
  comm->allreduce(x.data(), x.size(), ReduceOp::Avg);
  comm->allreduce_async(x.data(), x.size())->wait();
  comm->barrier();
  auto sub = comm->split(0, 0, "solo-sub");
  EXPECT_EQ(sub->size(), 1);
  EXPECT_EQ(x, (std::vector<float>{1, 2, 3}));
  EXPECT_THROW(comm->send(x.data(), 4, 0), Error);
}

// The async worker and the caller's thread read the timeout and the algorithm without a lock:
// they are fixed when a communicator is made (a setter would race with them), and its sub-groups
// inherit them.
template <typename C>
concept ChangeableAfterConstruction =
    requires(C& c) { c.set_timeout_s(1.0); } || requires(C& c) { c.set_algo(Algo::Tree); };
static_assert(!ChangeableAfterConstruction<Communicator>);

TEST(CommOptions, TimeoutAndAlgorithmAreFixedAtConstructionAndInherited) {
  CommOptions opts;
  opts.timeout_s = 7.5;
  opts.algo = Algo::Tree;
  auto comm = communicator_from_env(opts);
  auto sub = comm->split(0, 0, "solo-sub");
  for (const Communicator* c : {comm.get(), sub.get()}) {
    EXPECT_EQ(c->timeout_s(), 7.5);
    EXPECT_EQ(c->algo(), Algo::Tree);
  }
}

TEST(LaunchEnvironment, TorchrunStyleVariablesAreHonoured) {
  setenv("RANK", "2", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("LOCAL_RANK", "0", 1);
  setenv("LOCAL_WORLD_SIZE", "2", 1);
  setenv("MASTER_PORT", "1234", 1);
  const auto e = comm::detect_environment();
  EXPECT_EQ(e.launcher, comm::Launcher::Torchrun);
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_port, 1234);
  setenv("RANK", "4", 1);
  EXPECT_THROW(comm::detect_environment(), Error);
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_PORT"})
    unsetenv(v);
}

}  // namespace
}  // namespace loom::comm

// The shared-memory sizes come from the environment: a value that is not a whole number in range
// is refused naming the variable, never truncated (LOOM_SHM_SLOTS=4294967298 once became 2).
TEST(ShmConfig, MalformedOrOutOfRangeEnvironmentIsRefusedNamingTheVariable) {
  const auto refused = [](const char* name, const char* value) {
    setenv(name, value, 1);
    const std::string err = loom::test::error_of([] { loom::comm::shm::config_from_env(2); });
    unsetenv(name);
    return err;
  };
  for (const char* bad : {"4294967298", "8x", "", "-4", "99999999999999999999"})
    EXPECT_NE(refused("LOOM_SHM_SLOTS", bad).find("LOOM_SHM_SLOTS must be an integer"),
              std::string::npos) << bad;
  EXPECT_NE(refused("LOOM_SHM_SLOT_BYTES", "1e6").find("LOOM_SHM_SLOT_BYTES"), std::string::npos);
  EXPECT_NE(refused("LOOM_SHM_CONTEXTS", "0").find("LOOM_SHM_CONTEXTS must be >= 1"), std::string::npos);
  setenv("LOOM_SHM_SLOTS", "4", 1);
  EXPECT_EQ(loom::comm::shm::config_from_env(2).slots, 4u);
  unsetenv("LOOM_SHM_SLOTS");
}
