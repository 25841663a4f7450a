#include "loom/data/distributed_sampler.hpp"

#include <numeric>
#include <utility>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"

namespace loom {

DistributedSampler::DistributedSampler(size_t dataset_size, int num_replicas, int rank,
                                       bool shuffle, uint64_t seed, bool drop_last)
    : dataset_size_(dataset_size),
      num_replicas_(num_replicas),
      rank_(rank),
      shuffle_(shuffle),
      seed_(seed),
      drop_last_(drop_last) {
  LOOM_CHECK(num_replicas > 0, "distributed sampler: num_replicas must be > 0, got ", num_replicas);
  LOOM_CHECK(rank >= 0 && rank < num_replicas, "distributed sampler: rank ", rank,
             " out of range [0, ", num_replicas, ")");
}

void DistributedSampler::set_epoch(uint64_t epoch) { epoch_ = epoch; }

size_t DistributedSampler::num_samples() const {
  const size_t r = static_cast<size_t>(num_replicas_);
  // drop_last drops the tail that would not fill one sample per rank; otherwise round up (pad).
  return drop_last_ ? dataset_size_ / r : (dataset_size_ + r - 1) / r;
}

std::vector<size_t> DistributedSampler::indices() const {
  std::vector<size_t> order(dataset_size_);
  std::iota(order.begin(), order.end(), size_t{0});
  if (shuffle_) {
    // Fisher-Yates driven by (seed + epoch) only, so the permutation is the same on every rank
    // and for every world size.
    Rng rng(seed_ + epoch_);
    for (size_t i = dataset_size_; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  }
  const size_t r = static_cast<size_t>(num_replicas_);
  const size_t per_rank = num_samples();
  std::vector<size_t> mine;
  mine.reserve(per_rank);
  // Position p of the padded order is order[p % dataset_size]: padding repeats the head (again
  // and again when dataset_size < num_replicas), as PyTorch does.
  for (size_t k = 0; k < per_rank; ++k) {
    mine.push_back(order[(k * r + static_cast<size_t>(rank_)) % dataset_size_]);
  }
  return mine;
}

}  // namespace loom
