// parse_json / read_json_file: outside JSON is parsed with a bounded depth and every failure is a
// loom::Error naming the file and field; `loom train` reports them and exits 1 (no crash).
#include "loom/core/json_input.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "error_of.hpp"
#include "train_cli_util.hpp"

namespace loom {
namespace {

using test::error_of;

std::string nested_arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonInput, AcceptsNestingUpToTheBound) {
  const auto j = parse_json("{\"a\": " + nested_arrays(kMaxJsonDepth - 1) + "}", "x.json");
  EXPECT_TRUE(j["a"].is_array());
}

TEST(JsonInput, RejectsNestingBeyondTheBound) {
  const std::string e = error_of([] { parse_json("{\"a\": " + nested_arrays(kMaxJsonDepth) + "}", "x.json"); });
  EXPECT_NE(e.find("x.json: JSON nested deeper than 64 levels at byte 69"), std::string::npos) << e;
}

TEST(JsonInput, BracketsInsideStringsDoNotCount) {
  const std::string brackets(1000, '[');
  const auto j = parse_json("{\"s\": \"" + brackets + "\\\"" + "\"}", "x.json");
  EXPECT_EQ(j["s"].get<std::string>(), brackets + "\"");
}

TEST(JsonInput, NumberOverflowNamesTheFileAndField) {
  const std::string e = error_of([] { parse_json(R"({"train": {"seed": 1, "lr": 1e400}})", "c.json"); });
  EXPECT_NE(e.find("c.json: not valid JSON (in field \"train.lr\"): number overflow parsing '1e400'"),
            std::string::npos) << e;
  EXPECT_EQ(e.find("[json.exception"), std::string::npos) << e;
}

TEST(JsonInput, SyntaxErrorNamesTheFileAndPosition) {
  const std::string e = error_of([] { parse_json("{\"model\": {\"n_layer\": 2,}}", "c.json"); });
  EXPECT_NE(e.find("c.json: not valid JSON (after field \"model.n_layer\"): parse error at line 1, column 25: syntax error"), std::string::npos) << e;
}

TEST(JsonInput, TrainRefusesDeeplyNestedConfigWithoutCrashing) {
  testing::TempDir dir;
  const std::string cfg = dir / "deep.json";
  std::ofstream(cfg) << "{\"train\": {\"lr\": " << nested_arrays(200000) << "}}";
  const auto r = testing::loom_cli("train --config " + cfg, 60);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("deep.json: JSON nested deeper than 64 levels"), std::string::npos) << r.out;
}

TEST(JsonInput, TrainRefusesOutOfRangeNumberNamingFileAndField) {
  testing::TempDir dir;
  const std::string cfg = dir / "big.json";
  std::ofstream(cfg) << "{\"train\": {\"lr\": 1e400}}";
  const auto r = testing::loom_cli("train --config " + cfg, 60);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("big.json: not valid JSON (in field \"train.lr\"): number overflow"), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace loom
