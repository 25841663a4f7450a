// Communicator::all_to_all(_v) on shm: every (source, destination) piece arrives where it belongs
// at 2, 3 and 4 ranks, for equal pieces of several sizes and for pieces of different sizes
// (empty ones included); a rank that died is named by the others within the timeout.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "forked_ranks.hpp"

namespace loom::testing {
namespace {

// A word that says where it comes from and where it goes: (src, dst, index) as bits, carried as
// an f32 (all-to-all moves bytes, never does arithmetic).
float tag(int src, int dst, size_t i) {
  const uint32_t bits = (static_cast<uint32_t>(src) << 28) | (static_cast<uint32_t>(dst) << 24) |
                        static_cast<uint32_t>(i & 0xFFFFFF);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Elements rank src sends rank dst in the variable-size test: 0 for some pairs, up to ~5 slots
// of the shm ring for others.
size_t varied_count(int src, int dst, size_t scale) { return ((src * 3 + dst * 5 + 1) % 4) * scale; }

void expect_all_ranks_ok(const std::vector<RankOutcome>& out) {
  for (size_t r = 0; r < out.size(); ++r)
    EXPECT_EQ(out[r].exit_code, 0) << "rank " << r << ": " << out[r].error;
}

class AllToAll : public ::testing::TestWithParam<int> {};

TEST_P(AllToAll, EqualPiecesArriveFromEverySourceAtEveryDestination) {
  expect_all_ranks_ok(run_forked_ranks(GetParam(), 60, [](comm::Communicator& c) {
    const int n = c.size(), me = c.rank();
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}, size_t{1001}, size_t{300007}}) {
      std::vector<float> send(n * chunk), recv(n * chunk, 0.0f);
      for (int dst = 0; dst < n; ++dst)
        for (size_t i = 0; i < chunk; ++i) send[dst * chunk + i] = tag(me, dst, i);
      c.all_to_all(send.data(), recv.data(), chunk);
      for (int src = 0; src < n; ++src)
        for (size_t i = 0; i < chunk; ++i)
          if (!same_bits(recv[src * chunk + i], tag(src, me, i))) return 3;
    }
    return 0;
  }));
}

TEST_P(AllToAll, PiecesOfDifferentSizesIncludingEmptyOnesArrive) {
  expect_all_ranks_ok(run_forked_ranks(GetParam(), 60, [](comm::Communicator& c) {
    const int n = c.size(), me = c.rank();
    for (size_t scale : {size_t{1}, size_t{50000}}) {
      std::vector<size_t> send_counts(n), recv_counts(n);
      for (int p = 0; p < n; ++p) {
        send_counts[p] = varied_count(me, p, scale);
        recv_counts[p] = varied_count(p, me, scale);
      }
      std::vector<float> send, recv;
      for (int dst = 0; dst < n; ++dst)
        for (size_t i = 0; i < send_counts[dst]; ++i) send.push_back(tag(me, dst, i));
      size_t total = 0;
      for (size_t k : recv_counts) total += k;
      recv.assign(total, 0.0f);
      c.all_to_all_v(send.data(), send_counts, recv.data(), recv_counts);
      size_t at = 0;
      for (int src = 0; src < n; ++src)
        for (size_t i = 0; i < recv_counts[src]; ++i)
          if (!same_bits(recv[at++], tag(src, me, i))) return 3;
    }
    return 0;
  }));
}

INSTANTIATE_TEST_SUITE_P(Ranks, AllToAll, ::testing::Values(2, 3, 4));

TEST(AllToAllFailure, ADeadPeerIsNamedWithinTheTimeout) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto out = run_forked_ranks(
      3, 60,
      [](comm::Communicator& c) {
        if (c.rank() == 1) _exit(0);  // dies without a word
        const size_t chunk = 1000;
        std::vector<float> send(3 * chunk, 1.0f), recv(3 * chunk);
        try {
          c.all_to_all(send.data(), recv.data(), chunk);
        } catch (const comm::PeerFailure& e) {
          const std::string m = e.what();
          return m.find("all-to-all") != std::string::npos && m.find("rank 1") != std::string::npos
                     ? 0
                     : 3;
        }
        return 4;  // completed without its peer
      },
      /*comm_timeout_s=*/3);
  EXPECT_EQ(out[0].exit_code, 0) << out[0].error;
  EXPECT_EQ(out[2].exit_code, 0) << out[2].error;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20);
}

TEST(AllToAllFailure, CountsForTheWrongNumberOfRanksAreRefused) {
  expect_all_ranks_ok(run_forked_ranks(2, 60, [](comm::Communicator& c) {
    const std::vector<size_t> three = {1, 1, 1};
    std::vector<float> buf(3);
    try {
      c.all_to_all_v(buf.data(), three, buf.data(), three);
    } catch (const Error& e) {
      return std::string(e.what()).find("3 send and 3 receive counts for 2 ranks") !=
                     std::string::npos
                 ? 0
                 : 3;
    }
    return 4;
  }));
}

// Debug mode (LOOM_COMM_DEBUG=1): a rank calling all-to-all while another calls all-reduce gets
// an error listing both calls, on both ranks, instead of mixing up their buffers.
TEST(AllToAllFailure, DebugModeNamesAMismatchedCall) {
  setenv("LOOM_COMM_DEBUG", "1", 1);  // inherited by the forked ranks
  const auto out = run_forked_ranks(2, 60, [](comm::Communicator& c) {
    std::vector<float> a(4, 1.0f), b(4);
    try {
      if (c.rank() == 0)
        c.all_to_all(a.data(), b.data(), 2);
      else
        c.allreduce(a.data(), 4);
    } catch (const Error& e) {
      const std::string m = e.what();
      return m.find("collective mismatch") != std::string::npos &&
                     m.find("called #0 alltoall(2 x f32") != std::string::npos &&
                     m.find("called #0 allreduce(4 x f32") != std::string::npos
                 ? 0
                 : 3;
    }
    return 4;
  });
  unsetenv("LOOM_COMM_DEBUG");
  expect_all_ranks_ok(out);
}

}  // namespace
}  // namespace loom::testing
