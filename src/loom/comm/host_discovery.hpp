#pragma once
// Which world ranks share a host, learned from the ranks themselves.
#include <memory>

#include "loom/comm/communicator.hpp"
#include "loom/comm/topology.hpp"

namespace loom::comm {

// Collective over the world: every rank contributes host_identity() and its hostname; ranks
// with the same identity share a host.
Hosts discover_hosts(Communicator& world);

}  // namespace loom::comm
