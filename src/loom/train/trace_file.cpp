#include "loom/train/trace_file.hpp"

#include <algorithm>
#include <cstdint>

#include "loom/core/trace.hpp"
#include "loom/io/file_io.hpp"

namespace loom {

namespace {

// Entries in a chunk of events_json() text: one per line.
size_t entries(const std::string& chunk) {
  return chunk.empty() ? 0 : static_cast<size_t>(std::count(chunk.begin(), chunk.end(), '\n')) + 1;
}

}  // namespace

size_t write_trace(comm::Communicator* comm, const std::string& path) {
  const std::string mine = trace::events_json();
  size_t count = entries(mine);
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  if (rank != 0) {
    const uint64_t bytes = mine.size();
    comm->send(&bytes, sizeof bytes, 0);
    comm->send(mine.data(), mine.size(), 0);
    return 0;
  }
  std::string text = "{\"traceEvents\": [\n" + mine;
  for (int r = 1; r < world; ++r) {
    uint64_t bytes = 0;
    comm->recv(&bytes, sizeof bytes, r);
    std::string theirs(bytes, '\0');
    comm->recv(theirs.data(), theirs.size(), r);
    text += ",\n" + theirs;
    count += entries(theirs);
  }
  text += "\n], \"displayTimeUnit\": \"ms\"}\n";
  write_file_atomic(path, text);
  return count;
}

}  // namespace loom
