#include "loom/train/batch_loader.hpp"

#include "loom/core/check.hpp"

namespace loom {

BatchLoader::BatchLoader(const WindowDataset& dataset, int batch_size, int seq_len, int rank,
                         int world, uint64_t seed)
    : dataset_(dataset),
      batch_size_(batch_size),
      seq_len_(seq_len),
      world_(world),
      sampler_(dataset.size(), world, rank, /*shuffle=*/true, seed, /*drop_last=*/true) {
  LOOM_CHECK(sampler_.num_samples() >= static_cast<size_t>(batch_size), "the training data has ",
             dataset.size(), " windows of seq_len ", seq_len, " (", dataset.num_tokens(),
             " tokens), fewer than batch_size ", batch_size, " x ", world,
             " ranks: use more data or a smaller batch_size/seq_len/stride");
  start_epoch(0);
}

void BatchLoader::start_epoch(uint64_t epoch) {
  epoch_ = epoch;
  sampler_.set_epoch(epoch);
  indices_ = sampler_.indices();
  next_ = 0;
}

void BatchLoader::next(int32_t* inputs, int32_t* targets) {
  if (next_ + batch_size_ > indices_.size()) start_epoch(epoch_ + 1);
  for (int b = 0; b < batch_size_; ++b) {
    const size_t off = static_cast<size_t>(b) * seq_len_;
    dataset_.get(indices_[next_ + b], inputs + off, targets + off);
  }
  next_ += batch_size_;
}

DataPosition BatchLoader::position() const { return {epoch_, next_ * world_}; }

void BatchLoader::set_position(const DataPosition& pos) {
  LOOM_CHECK(pos.samples % world_ == 0, "data position: ", pos.samples,
             " samples consumed in the epoch cannot be split evenly over ", world_, " ranks");
  start_epoch(pos.epoch);
  next_ = pos.samples / world_;
}

}  // namespace loom
