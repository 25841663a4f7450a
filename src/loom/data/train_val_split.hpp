#pragma once
// The train/val assignment of `loom tokenize`'s documents. Document i (0-based, over all inputs
// in order) goes to val when floor((i+1)*f) > floor(i*f), f = the val fraction: every 10th
// document for 0.1, a whole-document and deterministic split. Each document is written preceded
// by <|endoftext|>, as llm.c's data scripts do.
//
// The val split is never left empty when f > 0. If the rule put no document there (fewer than
// 1/f documents), the last document goes to val instead; a corpus of a single document is split
// inside it: its last max(1, round(f * n)) of n tokens go to val, the rest to train.
#include <cstdint>
#include <span>
#include <vector>

#include "loom/data/shard_writer.hpp"

namespace loom {

class TrainValSplit {
 public:
  TrainValSplit(ShardSequenceWriter& train, ShardSequenceWriter& val, double val_fraction,
                int32_t eot_id);
  void add(std::span<const int32_t> doc);
  // Writes the document held back (see above). Errors if f > 0 and the input cannot give both
  // splits a token (a single document of one token), or if there are no documents.
  void finish();
  uint64_t train_documents() const { return train_docs_; }
  // A single document split inside counts as one document in each split.
  uint64_t val_documents() const { return val_docs_; }

 private:
  bool rule_says_val(uint64_t doc) const;
  void write(ShardSequenceWriter& writer, std::span<const int32_t> ids);
  ShardSequenceWriter &train_, &val_;
  double f_;
  int32_t eot_;
  uint64_t docs_ = 0, train_docs_ = 0, val_docs_ = 0;
  std::vector<int32_t> held_;  // document docs_ - 1, written when the next one comes or at finish
};

}  // namespace loom
