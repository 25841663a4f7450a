#pragma once
// Writes the timeline trace (core/trace) of every rank into one Chrome trace JSON file:
// {"traceEvents": [...], "displayTimeUnit": "ms"}, one process per rank, loadable in Perfetto.
#include <string>

#include "loom/comm/communicator.hpp"

namespace loom {

// Collective over `comm` (nullptr: a single process): the other ranks send their events to
// rank 0, which writes `path`. Returns the number of entries (events and process/thread names) written; 0 on other ranks.
size_t write_trace(comm::Communicator* comm, const std::string& path);

}  // namespace loom
