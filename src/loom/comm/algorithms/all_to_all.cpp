// All-to-all by pairwise exchange: in step s (1..n-1) rank r sends its piece for rank r+s while
// receiving rank r-s's piece for it, so every step is a permutation of the ranks and every link
// carries one piece at a time; the piece a rank keeps is copied locally. n-1 latency steps, each
// rank sends and receives exactly its own pieces (no relaying). Empty pieces are not sent: both
// ends know the sizes, so they skip the same messages.
#include <cstring>

#include "loom/comm/algorithms/algorithms.hpp"

namespace loom::comm::algorithms {

void all_to_all(Transport& t, const std::byte* send, std::span<const size_t> send_bytes,
                std::byte* recv, std::span<const size_t> recv_bytes) {
  const int n = t.size(), r = t.rank();
  LOOM_CHECK(send_bytes.size() == static_cast<size_t>(n) && recv_bytes.size() == static_cast<size_t>(n),
             "all-to-all: ", send_bytes.size(), " send and ", recv_bytes.size(),
             " receive sizes for a group of ", n);
  // Offsets of each peer's piece in the packed buffers.
  std::vector<size_t> send_at(n + 1, 0), recv_at(n + 1, 0);
  for (int p = 0; p < n; ++p) {
    send_at[p + 1] = send_at[p] + send_bytes[p];
    recv_at[p + 1] = recv_at[p] + recv_bytes[p];
  }
  LOOM_CHECK(send_bytes[r] == recv_bytes[r], "all-to-all: rank ", r, " keeps ", send_bytes[r],
             " bytes of its own but expects ", recv_bytes[r]);
  if (send_bytes[r] > 0) std::memcpy(recv + recv_at[r], send + send_at[r], send_bytes[r]);
  for (int s = 1; s < n; ++s) {
    const int to = (r + s) % n, from = (r - s + n) % n;
    const bool sends = send_bytes[to] > 0, receives = recv_bytes[from] > 0;
    if (!sends && !receives) continue;
    t.exchange(sends ? to : -1, {send + send_at[to], send_bytes[to]}, receives ? from : -1,
               recv_bytes[from], copy_sink(recv + recv_at[from]));
  }
}

}  // namespace loom::comm::algorithms
