#include "loom/data/token_shard.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include "loom/core/check.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
}

// Opening `path` must throw a loom::Error whose message names the file and contains `problem`.
void expect_refused(const std::string& path, int vocab, const std::string& problem) {
  try {
    TokenShard shard(path, vocab);
    FAIL() << "opened a bad shard: " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(problem), std::string::npos) << e.what();
  }
}

TEST(TokenShard, WriteThenReadRoundTripsInLlmcLayout) {
  testing::TempDir dir;
  const std::vector<uint16_t> tokens = {50256, 0, 1, 50255, 42, 7};
  const std::string path = dir / "train_000000.bin";
  write_shard(path, tokens);
  const auto bytes = read_bytes(path);
  ASSERT_EQ(bytes.size(), kShardHeaderBytes + tokens.size() * 2);
  int32_t header[3];
  std::memcpy(header, bytes.data(), sizeof(header));
  EXPECT_EQ(header[0], 20240520);
  EXPECT_EQ(header[1], 1);
  EXPECT_EQ(header[2], static_cast<int32_t>(tokens.size()));
  TokenShard shard(path, 50257);
  ASSERT_EQ(shard.size(), tokens.size());
  EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), shard.tokens().begin()));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(TokenShard, EmptyShardIsValid) {
  testing::TempDir dir;
  write_shard(dir / "a.bin", {});
  EXPECT_EQ(TokenShard(dir / "a.bin", 257).size(), 0u);
}

TEST(TokenShard, RefusesBadMagicVersionTruncationAndIdsOutsideTheVocabulary) {
  testing::TempDir dir;
  const std::string path = dir / "shard.bin";
  const std::vector<uint16_t> tokens = {1, 2, 300, 4};
  write_shard(path, tokens);
  const auto good = read_bytes(path);

  auto bad = good;
  bad[0] ^= 1;
  write_bytes(path, bad);
  expect_refused(path, 50257, "bad magic");

  bad = good;
  bad[4] = 2;  // version 2
  write_bytes(path, bad);
  expect_refused(path, 50257, "unsupported version 2");

  bad = good;
  bad.pop_back();
  write_bytes(path, bad);
  expect_refused(path, 50257, "truncated body");

  bad = good;
  bad.push_back(0);
  write_bytes(path, bad);
  expect_refused(path, 50257, "trailing bytes");

  bad.assign(good.begin(), good.begin() + 100);
  write_bytes(path, bad);
  expect_refused(path, 50257, "truncated header");

  write_bytes(path, good);
  expect_refused(path, 257, "token id 300 at position 2 is >= vocab size 257");
  EXPECT_EQ(TokenShard(path, 301).size(), 4u);

  expect_refused(dir / "missing.bin", 257, "cannot open");
}

// Fuzz: random corruptions of a valid shard (bit flips, byte overwrites in the header and body,
// truncation, extension) must each give a clean load or a loom::Error, never a crash.
TEST(TokenShard, RandomlyCorruptedShardsLoadCleanlyOrThrowLoomError) {
  testing::TempDir dir;
  const std::string path = dir / "fuzz.bin";
  std::vector<uint16_t> tokens(64);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(i * 97 % 300);
  write_shard(path, tokens);
  const auto good = read_bytes(path);
  std::mt19937 gen(1234);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 500; ++iter) {
    auto bytes = good;
    const int mutations = 1 + static_cast<int>(gen() % 4);
    for (int m = 0; m < mutations; ++m) {
      switch (gen() % 5) {
        case 0:  // flip a bit in the first 16 header bytes (magic, version, count)
          bytes[gen() % 16] ^= static_cast<char>(1u << (gen() % 8));
          break;
        case 1:  // overwrite a byte anywhere
          if (!bytes.empty()) bytes[gen() % bytes.size()] = static_cast<char>(gen());
          break;
        case 2:  // truncate
          bytes.resize(gen() % (bytes.size() + 1));
          break;
        case 3:  // extend
          bytes.resize(bytes.size() + 1 + gen() % 8, static_cast<char>(gen()));
          break;
        default:  // count field set to a random value
          if (bytes.size() >= 12) {
            const int32_t count = static_cast<int32_t>(gen());
            std::memcpy(bytes.data() + 8, &count, 4);
          }
      }
    }
    write_bytes(path, bytes);
    try {
      TokenShard shard(path, 300);
      for (const uint16_t t : shard.tokens()) ASSERT_LT(t, 300);
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(loaded, 0);  // body byte changes that keep ids < 300 still load
}

}  // namespace
}  // namespace loom
