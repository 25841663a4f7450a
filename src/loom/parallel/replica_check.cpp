#include "loom/parallel/replica_check.hpp"

#include <string>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/core/checksum.hpp"

namespace loom::parallel {

double allreduce_sum(comm::Communicator& comm, double x) {
  const float hi = static_cast<float>(x);
  float v[2] = {hi, static_cast<float>(x - hi)};
  comm.allreduce(v, 2, comm::ReduceOp::Sum);
  return static_cast<double>(v[0]) + v[1];
}

void check_identical_replicas(comm::Communicator& comm, const float* params, size_t count) {
  // The 64-bit hash as four 16-bit pieces: floats hold them exactly, so an all-gather of floats
  // moves them losslessly. Rank r's pieces sit at block_of(4 * size, size, r) = [4r, 4r + 4).
  constexpr int kPieces = 4;
  const int size = comm.size();
  std::vector<float> all(static_cast<size_t>(kPieces) * size, 0.0f);
  uint64_t h = fnv1a64(params, count * sizeof(float));
  for (int i = 0; i < kPieces; ++i, h >>= 16)
    all[static_cast<size_t>(comm.rank()) * kPieces + i] = static_cast<float>(h & 0xffff);
  comm.allgather(all.data(), all.size());
  auto hash_of = [&](int r) {
    uint64_t x = 0;
    for (int i = kPieces - 1; i >= 0; --i)
      x = (x << 16) | static_cast<uint64_t>(all[static_cast<size_t>(r) * kPieces + i]);
    return x;
  };
  std::string differ;
  for (int r = 1; r < size; ++r)
    if (hash_of(r) != hash_of(0)) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  LOOM_CHECK(differ.empty(), "data parallel: the model replicas differ at start: rank(s) ", differ,
             " hold parameters different from rank 0's (checksum ", hex64(hash_of(0)),
             " on rank 0); every rank must use the same model config, seed and checkpoint");
}

}  // namespace loom::parallel
