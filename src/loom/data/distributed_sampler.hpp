#pragma once
// PyTorch DistributedSampler semantics: each epoch a permutation of [0, dataset_size) (identity
// when !shuffle) that depends only on (seed + epoch), never on the world size; padded by
// repeating its head to a multiple of num_replicas (or truncated when drop_last); rank r takes
// positions r, r + num_replicas, ... So batch s of every rank together is exactly batch s of a
// single rank whose batch is num_replicas times larger.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace loom {

class DistributedSampler {
 public:
  DistributedSampler(size_t dataset_size, int num_replicas, int rank, bool shuffle, uint64_t seed,
                     bool drop_last);
  void set_epoch(uint64_t epoch);
  size_t num_samples() const;         // per rank, equal on every rank
  std::vector<size_t> indices() const;  // this rank's num_samples() indices for the epoch

 private:
  size_t dataset_size_;
  int num_replicas_;
  int rank_;
  bool shuffle_;
  uint64_t seed_;
  bool drop_last_;
  uint64_t epoch_ = 0;
};

}  // namespace loom
