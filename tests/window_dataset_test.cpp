#include "loom/data/window_dataset.hpp"

#include <gtest/gtest.h>

#include <numeric>

#include "loom/core/check.hpp"
#include "loom/data/token_shard.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

// Shards holding the tokens 0, 1, 2, ... in order, split at the given sizes.
std::vector<std::string> write_counting_shards(const testing::TempDir& dir,
                                               const std::vector<size_t>& sizes) {
  std::vector<std::string> paths;
  uint16_t next = 0;
  for (size_t s = 0; s < sizes.size(); ++s) {
    std::vector<uint16_t> tokens(sizes[s]);
    for (auto& t : tokens) t = next++;
    paths.push_back(dir / ("train_" + std::to_string(s) + ".bin"));
    write_shard(paths.back(), tokens);
  }
  return paths;
}

TEST(WindowDataset, WindowsFollowStrideAndCrossShardBoundaries) {
  testing::TempDir dir;
  // 25 tokens in shards of 7, 0 (empty), 3 and 15 tokens.
  const auto paths = write_counting_shards(dir, {7, 0, 3, 15});
  const int context = 4, stride = 3;
  WindowDataset ds(paths, context, stride, 1000);
  EXPECT_EQ(ds.num_tokens(), 25u);
  EXPECT_EQ(ds.size(), (25u - 5u) / 3u + 1u);  // last window starts at 18, ends at token 22
  std::vector<int32_t> in(context), tg(context);
  for (size_t w = 0; w < ds.size(); ++w) {
    ds.get(w, in.data(), tg.data());
    for (int k = 0; k < context; ++k) {
      EXPECT_EQ(in[k], static_cast<int32_t>(w * stride + k)) << "window " << w;
      EXPECT_EQ(tg[k], static_cast<int32_t>(w * stride + k + 1)) << "window " << w;
    }
  }
  EXPECT_THROW(ds.get(ds.size(), in.data(), tg.data()), Error);
}

TEST(WindowDataset, ExactFitGivesOneWindowAndTooFewTokensIsAnError) {
  testing::TempDir dir;
  const auto paths = write_counting_shards(dir, {5});
  EXPECT_EQ(WindowDataset(paths, 4, 100, 1000).size(), 1u);
  EXPECT_THROW(WindowDataset(paths, 5, 1, 1000), Error);
  EXPECT_THROW(WindowDataset(paths, 4, 0, 1000), Error);
  EXPECT_THROW(WindowDataset(paths, 4, 1, 3), Error);  // id 4 >= vocab 3
}

TEST(FindShards, MatchesLlmcNamesSortedAndComplainsWhenNone) {
  testing::TempDir dir;
  for (const char* name : {"fineweb_train_000002.bin", "fineweb_train_000001.bin",
                           "fineweb_val_000000.bin", "train_notes.txt"}) {
    write_shard(dir / name, std::vector<uint16_t>{1, 2});
  }
  EXPECT_EQ(find_shards(dir.path(), "train"),
            (std::vector<std::string>{dir / "fineweb_train_000001.bin",
                                      dir / "fineweb_train_000002.bin"}));
  EXPECT_EQ(find_shards(dir.path(), "val"),
            std::vector<std::string>{dir / "fineweb_val_000000.bin"});
  testing::TempDir empty;
  EXPECT_THROW(find_shards(empty.path(), "train"), Error);
  EXPECT_THROW(find_shards(dir.path(), "test"), Error);
}

}  // namespace
}  // namespace loom
