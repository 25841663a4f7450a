#pragma once
// Batches of training windows for one rank: each epoch is a DistributedSampler permutation
// (shuffled with the run's seed, drop_last); a batch is the next batch_size indices of this
// rank's share; when fewer than batch_size remain the rest is skipped and the next epoch begins.
// The position is kept world-size independent (samples consumed over all ranks) for checkpoints.
#include <cstdint>
#include <vector>

#include "loom/data/distributed_sampler.hpp"
#include "loom/data/window_dataset.hpp"
#include "loom/train/checkpoint.hpp"

namespace loom {

class BatchLoader {
 public:
  // `dataset` must outlive the loader. Throws if a rank's share of one epoch is smaller than a
  // batch.
  BatchLoader(const WindowDataset& dataset, int batch_size, int seq_len, int rank, int world,
              uint64_t seed);
  // Fills inputs and targets, (batch_size, seq_len) int32 each.
  void next(int32_t* inputs, int32_t* targets);

  DataPosition position() const;
  // Throws if `pos.samples` is not a multiple of the world size.
  void set_position(const DataPosition& pos);

 private:
  void start_epoch(uint64_t epoch);
  const WindowDataset& dataset_;
  int batch_size_, seq_len_, world_;
  DistributedSampler sampler_;
  uint64_t epoch_ = 0;
  size_t next_ = 0;  // into indices_
  std::vector<size_t> indices_;
};

}  // namespace loom
