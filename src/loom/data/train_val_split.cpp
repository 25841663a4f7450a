#include "loom/data/train_val_split.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

namespace loom {

TrainValSplit::TrainValSplit(ShardSequenceWriter& train, ShardSequenceWriter& val,
                             double val_fraction, int32_t eot_id)
    : train_(train), val_(val), f_(val_fraction), eot_(eot_id) {
  LOOM_CHECK(val_fraction >= 0 && val_fraction < 1, "--val-fraction must be in [0, 1), got ",
             val_fraction);
}

bool TrainValSplit::rule_says_val(uint64_t doc) const {
  return std::floor(static_cast<double>(doc + 1) * f_) > std::floor(static_cast<double>(doc) * f_);
}

void TrainValSplit::write(ShardSequenceWriter& writer, std::span<const int32_t> ids) {
  writer.append(std::span<const int32_t>(&eot_, 1));
  writer.append(ids);
}

void TrainValSplit::add(std::span<const int32_t> doc) {
  if (docs_ > 0) {
    const bool val = rule_says_val(docs_ - 1);
    write(val ? val_ : train_, held_);
    ++(val ? val_docs_ : train_docs_);
  }
  held_.assign(doc.begin(), doc.end());
  ++docs_;
}

void TrainValSplit::finish() {
  LOOM_CHECK(docs_ > 0, "no documents in the input");
  const bool val_empty = f_ > 0 && val_docs_ == 0 && !rule_says_val(docs_ - 1);
  if (val_empty && docs_ == 1) {
    const size_t n = held_.size();
    LOOM_CHECK(n >= 2, "--val-fraction ", f_, ": the input is one document of ", n,
               " token(s), too short to split into train and val");
    const size_t tail = std::clamp<size_t>(std::llround(f_ * static_cast<double>(n)), 1, n - 1);
    write(train_, std::span<const int32_t>(held_).first(n - tail));
    write(val_, std::span<const int32_t>(held_).last(tail));
    ++train_docs_;
    ++val_docs_;
  } else {
    const bool val = val_empty || rule_says_val(docs_ - 1);
    write(val ? val_ : train_, held_);
    ++(val ? val_docs_ : train_docs_);
  }
  held_.clear();
}

}  // namespace loom
