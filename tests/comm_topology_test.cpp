// Host topology (topology.hpp): parsing LOOM_COMM_TOPOLOGY and LOOM_HOST_MAP, host identities,
// and which groups get two levels. No second process.
#include <gtest/gtest.h>

#include "error_of.hpp"
#include "loom/comm/topology.hpp"

namespace loom::comm {
namespace {

using test::error_of;

TEST(CommTopology, ParsesTheThreeNamesAndNamesTheBadValue) {
  EXPECT_EQ(parse_topology("auto"), Topology::Auto);
  EXPECT_EQ(parse_topology("flat"), Topology::Flat);
  EXPECT_EQ(parse_topology("hierarchical"), Topology::Hierarchical);
  EXPECT_EQ(error_of([] { parse_topology("tree"); }),
            "unknown topology 'tree' (expected auto, flat or hierarchical)");
}

TEST(CommTopology, HostMapNumbersHostsByFirstRankAndRejectsBadMaps) {
  const Hosts h = parse_host_map("5,5,2,2,7,7", 6);
  EXPECT_EQ(h.host_of, (std::vector<int>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(h.names, (std::vector<std::string>{"host 5", "host 2", "host 7"}));
  EXPECT_EQ(error_of([] { parse_host_map("0,0,1", 4); }),
            "LOOM_HOST_MAP='0,0,1' names 3 ranks, the job has 4");
  EXPECT_EQ(error_of([] { parse_host_map("0,x,1,1", 4); }),
            "LOOM_HOST_MAP='0,x,1,1': 'x' is not a host index (expected non-negative integers, "
            "one per rank)");
  EXPECT_NE(error_of([] { parse_host_map("0,-1", 2); }), "");
}

TEST(CommTopology, SameHostnameInAnotherNamespaceIsAnotherHost) {
  const Hosts h = hosts_from_identities({"a|net:[1]|5", "a|net:[1]|5", "a|net:[2]|5", "b|net:[1]|6"},
                                        {"a", "a", "a", "b"});
  EXPECT_EQ(h.host_of, (std::vector<int>{0, 0, 1, 2}));
  EXPECT_EQ(h.names, (std::vector<std::string>{"a#0", "a#1", "b"}));
  // This process's identity carries its hostname, network namespace and /dev/shm device.
  EXPECT_NE(host_identity().find("|net:["), std::string::npos) << host_identity();
}

TEST(CommTopology, GroupsGetTwoLevelsOnlyWithSeveralEvenHosts) {
  const Hosts h = parse_host_map("0,1,0,1,2,2", 6);
  // The world: hosts 0 {0,2}, 1 {1,3}, 2 {4,5}, whatever the rank order.
  const auto world = layout_of(h, {0, 1, 2, 3, 4, 5});
  ASSERT_TRUE(world.has_value());
  EXPECT_EQ(world->ranks, (std::vector<std::vector<int>>{{0, 2}, {1, 3}, {4, 5}}));
  EXPECT_EQ(world->host_of(3), 1);
  EXPECT_EQ(world->local_index(3), 1);
  EXPECT_FALSE(layout_of(h, {0, 2}).has_value());        // one host
  EXPECT_FALSE(layout_of(h, {0, 1, 4}).has_value());     // one rank per host
  EXPECT_FALSE(layout_of(h, {0, 2, 1}).has_value());     // uneven: 2 + 1
  EXPECT_FALSE(layout_of(single_host(4, "x"), {0, 1, 2, 3}).has_value());
}

}  // namespace
}  // namespace loom::comm
