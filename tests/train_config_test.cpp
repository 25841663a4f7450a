#include "loom/config/train_config.hpp"

#include <gtest/gtest.h>

#include "error_of.hpp"

#include "loom/core/check.hpp"

#include <fstream>
#include <functional>
#include <set>

#include "temp_dir.hpp"

namespace loom {
namespace {

using test::error_of;

nlohmann::json base() {
  return {{"model", {{"vocab_size", 257}, {"context_len", 32}, {"n_layer", 1}, {"n_head", 2}, {"d_model", 16}}},
          {"train", {{"data_dir", "d"}, {"out_dir", "o"}, {"lr", 1e-3}}}};
}

TEST(TrainConfig, ParsesBothSectionsAndFillsDefaults) {
  const RunConfig c = parse_run_config(base(), "test");
  EXPECT_EQ(c.model.d_model, 16);
  EXPECT_FLOAT_EQ(c.train.lr, 1e-3f);
  EXPECT_EQ(c.train.seq_len, 32);  // context_len
  EXPECT_EQ(c.train.stride, 32);   // seq_len
  EXPECT_EQ(c.train.batch_size, TrainConfig{}.batch_size);
  // to_json -> parse is the identity.
  const RunConfig again = parse_run_config(to_json(c), "again");
  EXPECT_EQ(to_json(again), to_json(c));
}

TEST(TrainConfig, OverridesReachEitherSectionWithTypes) {
  auto j = base();
  apply_overrides(j, {{"n_layer", "3"}, {"lr", "2e-3"}, {"clip_during_warmup", "true"}, {"sample_prompt", "Hi"}});
  const RunConfig c = parse_run_config(j, "test");
  EXPECT_EQ(c.model.n_layer, 3);
  EXPECT_FLOAT_EQ(c.train.lr, 2e-3f);
  EXPECT_TRUE(c.train.clip_during_warmup);
  EXPECT_EQ(c.train.sample_prompt, "Hi");
}

TEST(TrainConfig, BadInputIsAnErrorNamingTheField) {
  auto j = base();
  EXPECT_NE(error_of([&] { apply_overrides(j, {{"learning_rate", "1"}}); }).find("unknown flag --learning_rate"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_overrides(j, {{"batch_size", "eight"}}); }).find("--batch_size: expected an integer"),
            std::string::npos);
  j = base();
  j["train"]["lrr"] = 1;
  EXPECT_NE(error_of([&] { parse_run_config(j, "cfg.json"); }).find("cfg.json: unknown field train.lrr"),
            std::string::npos);
  j = base();
  j["train"]["batch_size"] = 1.5;
  EXPECT_NE(error_of([&] { parse_run_config(j, "cfg.json"); }).find("train.batch_size must be an integer"),
            std::string::npos);
  j = base();
  j["train"].erase("data_dir");
  EXPECT_NE(error_of([&] { parse_run_config(j, "cfg.json"); }).find("missing required field data_dir"),
            std::string::npos);
  j = base();
  j["train"]["seq_len"] = 64;
  EXPECT_NE(error_of([&] { parse_run_config(j, "cfg.json"); }).find("seq_len must be in [1, context_len = 32]"),
            std::string::npos);
  j = base();
  j["extra"] = {};
  EXPECT_NE(error_of([&] { parse_run_config(j, "cfg.json"); }).find("unknown section \"extra\""), std::string::npos);
}

TEST(TrainConfig, FieldNamesAreUniqueAcrossSections) {
  std::set<std::string> names;
  for (const auto& f : config_fields()) EXPECT_TRUE(names.insert(f.name).second) << f.name;
  EXPECT_TRUE(names.count("n_layer") && names.count("max_norm"));
}

TEST(TrainConfig, ShippedConfigsParse) {
  for (const char* name : {"tiny", "gpt2-small"}) {
    auto j = load_config_json(std::string(LOOM_SOURCE_DIR) + "/configs/" + name + ".json");
    apply_overrides(j, {{"data_dir", "d"}});
    const RunConfig c = parse_run_config(j, name);
    EXPECT_FALSE(c.train.out_dir.empty());
  }
}

TEST(TrainConfig, MissingOrInvalidFileIsAnErrorNamingIt) {
  testing::TempDir dir;
  EXPECT_NE(error_of([&] { load_config_json(dir / "none.json"); }).find("none.json: cannot open"), std::string::npos);
  std::ofstream(dir / "bad.json") << "{\"model\": ";
  EXPECT_NE(error_of([&] { load_config_json(dir / "bad.json"); }).find("bad.json: not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace loom
