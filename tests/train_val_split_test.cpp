#include "loom/data/train_val_split.hpp"

#include <gtest/gtest.h>

#include "loom/core/check.hpp"
#include "loom/data/token_shard.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

constexpr int32_t kEot = 9;

struct Splits {
  std::vector<int32_t> train, val;
  uint64_t train_docs = 0, val_docs = 0;
};

// Splits documents {1}, {2, 2}, {3, 3, 3}, ... (n of them, or `docs`) with fraction f.
Splits split(const std::vector<std::vector<int32_t>>& docs, double f) {
  testing::TempDir dir;
  ShardSequenceWriter train(dir.path(), "train", 1000, 10), val(dir.path(), "val", 1000, 10);
  TrainValSplit s(train, val, f, kEot);
  for (const auto& d : docs) s.add(d);
  s.finish();
  Splits out{{}, {}, s.train_documents(), s.val_documents()};
  for (const auto& p : train.finish()) {
    const TokenShard shard(p, 10);
    out.train.assign(shard.tokens().begin(), shard.tokens().end());
  }
  for (const auto& p : val.finish()) {
    const TokenShard shard(p, 10);
    out.val.assign(shard.tokens().begin(), shard.tokens().end());
  }
  return out;
}

std::vector<std::vector<int32_t>> docs(int n) {
  std::vector<std::vector<int32_t>> d;
  for (int i = 1; i <= n; ++i) d.push_back(std::vector<int32_t>(i, i));
  return d;
}

TEST(TrainValSplit, EveryNthDocumentGoesToVal) {
  const auto s = split(docs(4), 0.5);  // documents 1 and 3 (0-based) go to val
  EXPECT_EQ(s.train, (std::vector<int32_t>{kEot, 1, kEot, 3, 3, 3}));
  EXPECT_EQ(s.val, (std::vector<int32_t>{kEot, 2, 2, kEot, 4, 4, 4, 4}));
  EXPECT_EQ(s.train_docs, 2u);
  EXPECT_EQ(s.val_docs, 2u);
  EXPECT_TRUE(split(docs(3), 0.0).val.empty());
}

TEST(TrainValSplit, FewerDocumentsThanOneOverFGiveTheLastDocumentToVal) {
  const auto s = split(docs(3), 0.05);  // the rule's first val document would be the 20th
  EXPECT_EQ(s.train, (std::vector<int32_t>{kEot, 1, kEot, 2, 2}));
  EXPECT_EQ(s.val, (std::vector<int32_t>{kEot, 3, 3, 3}));
  EXPECT_EQ(s.val_docs, 1u);
}

TEST(TrainValSplit, ASingleDocumentIsSplitInside) {
  const auto s = split({{1, 2, 3, 4, 5, 6, 7, 8, 9, 0}}, 0.2);  // f * n = 2 tokens to val
  EXPECT_EQ(s.train, (std::vector<int32_t>{kEot, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(s.val, (std::vector<int32_t>{kEot, 9, 0}));
  EXPECT_EQ(split({{1, 2, 3}}, 0.01).val, (std::vector<int32_t>{kEot, 3}));  // at least one token
  EXPECT_THROW(split({{1}}, 0.1), Error);
  EXPECT_THROW(split({}, 0.1), Error);
}

}  // namespace
}  // namespace loom
