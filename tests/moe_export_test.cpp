// Exporting a mixture-of-experts model (issue 19): the Hugging Face directory keeps the router
// and every expert under their names and the moe_* fields in config.json, so --init_from reads
// the same model back; GGUF (llama.cpp's gpt2 has no experts) is refused, writing nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "error_of.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/infer/gguf_export.hpp"
#include "loom/infer/hf_export.hpp"
#include "loom/model/gpt.hpp"
#include "loom/train/pretrained.hpp"
#include "temp_dir.hpp"

namespace loom {
namespace {

GPTConfig moe_config() {
  GPTConfig c;
  c.vocab_size = 257;
  c.context_len = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 32;
  c.moe_experts = 4;
  c.moe_top_k = 2;
  c.moe_every = 2;
  return c;
}

TEST(MoeExport, HuggingFaceDirectoryReadsBackTheSameMixtureOfExperts) {
  testing::TempDir dir;
  GPT model(moe_config());
  model.init_weights(7);
  const std::string hf = dir / "hf";
  infer::export_hf(model, *load_tokenizer("byte"), hf);

  const PretrainedModel back = read_pretrained(hf);
  EXPECT_EQ(back.config.moe_experts, 4);
  EXPECT_EQ(back.config.moe_top_k, 2);
  EXPECT_EQ(back.config.moe_every, 2);
  check_pretrained_shape(back, moe_config());  // throws if a field differs
  std::vector<float> params(model.num_params(), -1.0f);
  load_pretrained_params(back, model.layout(), params.data());
  for (size_t i = 0; i < params.size(); ++i)
    ASSERT_EQ(params[i], model.params()[i]) << "parameter " << i;

  // A dense run cannot start from it: the message names moe_experts.
  GPTConfig dense = moe_config();
  dense.moe_experts = 0;
  EXPECT_NE(test::error_of([&] { check_pretrained_shape(back, dense); }).find("moe_experts"),
            std::string::npos);
}

TEST(MoeExport, GgufIsRefusedAndWritesNothing) {
  testing::TempDir dir;
  GPT model(moe_config());
  model.init_weights(7);
  const std::string path = dir / "moe.gguf";
  const std::string error = test::error_of([&] {
    infer::export_gguf(model, *load_tokenizer("byte"), infer::GgmlType::F32, "moe", path);
  });
  EXPECT_NE(error.find("mixture of experts (moe_experts 4)"), std::string::npos) << error;
  EXPECT_NE(error.find("llama.cpp's gpt2 architecture has no experts"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace loom
