// Receive from any peer (Communicator::wait_any) on shm: messages are taken in the order they
// arrive, a peer that died is reported as gone without breaking the communicator, and a wait on
// silent peers ends by the timeout naming one of them.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "forked_ranks.hpp"
#include "loom/comm/transport.hpp"

namespace loom::testing {
namespace {

TEST(CommAnyPeer, ReturnsThePeersInTheOrderTheirMessagesArrive) {
  const auto out = run_forked_ranks(3, 60, [](comm::Communicator& c) {
    std::vector<int> peers = {1, 2};
    if (c.rank() == 0) {
      std::vector<int> order;
      for (int i = 0; i < 2; ++i) {  // waiting only for the peers that still owe a message
        const auto a = c.wait_any(peers);
        if (a.gone) return 3;
        int value = 0;
        c.recv(&value, sizeof value, a.peer);
        if (value != 10 * a.peer) return 4;
        order.push_back(a.peer);
        std::erase(peers, a.peer);
      }
      return order == std::vector<int>{2, 1} ? 0 : 5;  // rank 1 sends 300 ms after rank 2
    }
    if (c.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const int value = 10 * c.rank();
    c.send(&value, sizeof value, 0);
    return 0;
  });
  for (size_t r = 0; r < out.size(); ++r)
    EXPECT_EQ(out[r].exit_code, 0) << "rank " << r << ": " << out[r].error;
}

TEST(CommAnyPeer, ADeadPeerIsReportedGoneAndTheOthersStillServed) {
  const auto out = run_forked_ranks(3, 60, [](comm::Communicator& c) {
    const std::vector<int> peers = {1, 2};
    if (c.rank() == 0) {
      const auto first = c.wait_any(peers);
      if (first.peer != 1 || !first.gone) return 3;
      const std::vector<int> rest = {2};
      const auto second = c.wait_any(rest);
      if (second.peer != 2 || second.gone) return 4;
      int value = 0;
      c.recv(&value, sizeof value, 2);
      return value == 20 ? 0 : 5;
    }
    if (c.rank() == 1) _exit(0);  // dies without a word
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const int value = 20;
    c.send(&value, sizeof value, 0);
    return 0;
  });
  EXPECT_EQ(out[0].exit_code, 0) << out[0].error;
  EXPECT_EQ(out[2].exit_code, 0) << out[2].error;
}

TEST(CommAnyPeer, SilentPeersTimeOutNamingOne) {
  const auto out = run_forked_ranks(
      2, 60,
      [](comm::Communicator& c) {
        if (c.rank() == 0) {
          const std::vector<int> peers = {1};
          try {
            c.wait_any(peers);
          } catch (const comm::PeerFailure& e) {
            const std::string m = e.what();
            return m.find("timed out") != std::string::npos &&
                           m.find("rank 1") != std::string::npos
                       ? 0
                       : 3;
          }
          return 4;
        }
        std::this_thread::sleep_for(std::chrono::seconds(3));  // alive, but says nothing
        return 0;
      },
      /*comm_timeout_s=*/1);
  EXPECT_EQ(out[0].exit_code, 0) << out[0].error;
}

}  // namespace
}  // namespace loom::testing
