#include "loom/io/safetensors.hpp"

#include <gtest/gtest.h>

#include "loom/core/check.hpp"

#include <cstring>
#include <filesystem>

#include "loom/core/checksum.hpp"
#include "loom/core/rng.hpp"
#include "loom/io/file_io.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

std::string write_sample(const testing::TempDir& dir) {
  static const float a[6] = {1, 2, 3, 4, 5, 6};
  static const int64_t step = 42;
  static const uint16_t u[3] = {7, 8, 9};
  const std::string path = dir / "t.safetensors";
  write_safetensors(path,
                    {{"a.weight", "F32", {2, 3}, a}, {"step", "I64", {}, &step}, {"u", "U16", {3}, u}},
                    {{"format", "pt"}});
  return path;
}

TEST(Safetensors, RoundTripKeepsNamesShapesDataAndMetadata) {
  testing::TempDir dir;
  const auto f = SafetensorsFile::load(write_sample(dir));
  EXPECT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  float a[6];
  f.copy_to("a.weight", "F32", {2, 3}, a);
  EXPECT_EQ(a[5], 6.0f);
  int64_t step = 0;
  f.copy_to("step", "I64", {}, &step);
  EXPECT_EQ(step, 42);
  EXPECT_EQ(f.entry("u").shape, std::vector<int64_t>{3});
  // The header is padded to 8 bytes, as the format asks.
  uint64_t n = 0;
  std::memcpy(&n, f.bytes().data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, WriterReturnsTheChecksumOfTheFile) {
  testing::TempDir dir;
  static const float x[2] = {1, 2};
  const std::string path = dir / "x.safetensors";
  const uint64_t h = write_safetensors(path, {{"x", "F32", {2}, x}});
  const auto bytes = read_file(path);
  EXPECT_EQ(h, fnv1a64(bytes.data(), bytes.size()));
}

TEST(Safetensors, WrongShapeOrDtypeOrNameIsAnErrorNamingFileAndTensor) {
  testing::TempDir dir;
  const auto f = SafetensorsFile::load(write_sample(dir));
  float a[6];
  try {
    f.copy_to("a.weight", "F32", {3, 2}, a);
    FAIL() << "wrong shape accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.safetensors: tensor 'a.weight' is F32 [2, 3], expected F32 [3, 2]"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(f.copy_to("a.weight", "F64", {2, 3}, a), Error);
  EXPECT_THROW(f.entry("nope"), Error);
}

TEST(Safetensors, TruncatedOrExtendedFileIsRefused) {
  testing::TempDir dir;
  auto bytes = read_file(write_sample(dir));
  for (size_t keep : {size_t(0), size_t(5), size_t(8), size_t(20), bytes.size() - 1}) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + keep);
    EXPECT_THROW(SafetensorsFile(cut, "cut"), Error) << "kept " << keep;
  }
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_THROW(SafetensorsFile(longer, "longer"), Error);
}

TEST(Safetensors, OverlappingOffsetsAreRefused) {
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  std::vector<uint8_t> bytes(8);
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + 12);
  try {
    SafetensorsFile(bytes, "overlap.safetensors");
    FAIL() << "overlap accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overlap.safetensors: tensor 'b'"), std::string::npos) << e.what();
  }
}

// Random corruption of the length, header and data: every outcome is a clean load or a
// loom::Error, never a crash or another exception.
TEST(Safetensors, MutationFuzzNeverCrashes) {
  testing::TempDir dir;
  const auto original = read_file(write_sample(dir));
  Rng rng(2024);
  int refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto bytes = original;
    const int edits = 1 + static_cast<int>(rng.below(4));
    for (int e = 0; e < edits; ++e) {
      switch (rng.below(4)) {
        case 0:  // flip a byte anywhere
          bytes[rng.below(bytes.size())] ^= static_cast<uint8_t>(1 + rng.below(255));
          break;
        case 1:  // a byte of the length field
          bytes[rng.below(8)] = static_cast<uint8_t>(rng.below(256));
          break;
        case 2:  // a digit in the header (offsets, shapes)
          bytes[8 + rng.below(std::min<size_t>(bytes.size() - 8, 200))] =
              static_cast<uint8_t>('0' + rng.below(10));
          break;
        default:  // truncate
          bytes.resize(rng.below(bytes.size() + 1));
          break;
      }
      if (bytes.empty()) break;
    }
    try {
      SafetensorsFile f(bytes, "fuzz");
      for (const auto& [name, entry] : f.tensors()) EXPECT_EQ(f.data(name).size(), entry.end - entry.begin);
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace loom
