#include "loom/infer/gguf_export.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gguf_reader.hpp"
#include "infer_test_util.hpp"
#include "loom/core/check.hpp"
#include "loom/infer/half.hpp"
#include "loom/train/checkpoint.hpp"

namespace loom::testing {
namespace {

namespace fs = std::filesystem;
using infer::GgmlType;

GPTConfig small_config(int d_model = 32) {
  GPTConfig c;
  c.vocab_size = 50257;
  c.context_len = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = d_model;
  return c;
}

// Value k of a tensor as stored (f32, f16, or q8_0 dequantised).
float stored_value(const GgufTensor& t, size_t k) {
  switch (t.type) {
    case 0: {
      float v;
      std::memcpy(&v, t.data + 4 * k, 4);
      return v;
    }
    case 1: {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * k, 2);
      return infer::half_to_float(h);
    }
    default: {  // q8_0: 34-byte blocks, f16 scale then 32 int8
      const uint8_t* block = t.data + (k / 32) * 34;
      uint16_t h;
      std::memcpy(&h, block, 2);
      return infer::half_to_float(h) * static_cast<int8_t>(block[2 + k % 32]);
    }
  }
}

TEST(Half, RoundTripsEveryHalfAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = infer::half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(infer::float_to_half(f), h) << std::hex << h;
  }
  EXPECT_EQ(infer::float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(infer::float_to_half(0.1f), 0x2E66);
  EXPECT_EQ(infer::float_to_half(1.0f + 1.0f / 2048), 0x3C00);  // tie -> even
  EXPECT_EQ(infer::float_to_half(1.0f + 3.0f / 2048), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(infer::float_to_half(65520.0f), 0x7C00);            // overflows to inf
  EXPECT_EQ(infer::float_to_half(-std::ldexp(1.0f, -24)), 0x8001);  // smallest subnormal
  EXPECT_TRUE(std::isnan(infer::half_to_float(infer::float_to_half(NAN))));
}

TEST(GgufExport, FileFollowsTheSpecWithLlamaCppsGpt2NamesForEveryType) {
  TempDir dir;
  GPT model(small_config());
  model.init_weights(7);
  const auto tok = load_tokenizer("gpt2");
  const int C = 32;
  for (const auto& [type, ftype, name] :
       {std::tuple{GgmlType::F32, 0u, "f32"}, {GgmlType::F16, 1u, "f16"}, {GgmlType::Q8_0, 7u, "q8_0"}}) {
    SCOPED_TRACE(name);
    const std::string path = dir / (std::string(name) + ".gguf");
    infer::export_gguf(model, *tok, type, "tiny", path);
    const GgufFile f = read_gguf(path);
    EXPECT_EQ(f.version, 3u);
    EXPECT_EQ(f.get<std::string>("general.architecture"), "gpt2");
    EXPECT_EQ(f.get<uint32_t>("general.file_type"), ftype);
    EXPECT_EQ(f.get<uint32_t>("gpt2.context_length"), 16u);
    EXPECT_EQ(f.get<uint32_t>("gpt2.embedding_length"), 32u);
    EXPECT_EQ(f.get<uint32_t>("gpt2.feed_forward_length"), 128u);
    EXPECT_EQ(f.get<uint32_t>("gpt2.block_count"), 2u);
    EXPECT_EQ(f.get<uint32_t>("gpt2.attention.head_count"), 2u);
    EXPECT_FLOAT_EQ(f.get<float>("gpt2.attention.layer_norm_epsilon"), 1e-5f);
    EXPECT_EQ(f.get<std::string>("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(f.get<std::string>("tokenizer.ggml.pre"), "gpt-2");
    const auto& tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
    const auto& types = f.get<std::vector<int32_t>>("tokenizer.ggml.token_type");
    const auto& merges = f.get<std::vector<std::string>>("tokenizer.ggml.merges");
    ASSERT_EQ(tokens.size(), 50257u);
    ASSERT_EQ(types.size(), 50257u);
    EXPECT_EQ(tokens[0], "!");
    EXPECT_EQ(tokens[220], "\xC4\xA0");        // " " is U+0120 in GPT-2's byte table
    EXPECT_EQ(tokens[15496], "Hello");
    EXPECT_EQ(tokens[50256], "<|endoftext|>");
    EXPECT_EQ(types[50256], 3);  // control
    EXPECT_EQ(types[15496], 1);  // normal
    ASSERT_EQ(merges.size(), 50000u);  // GPT-2's vocab.bpe: merge i makes id 256 + i
    EXPECT_EQ(merges[0], "\xC4\xA0 t");
    EXPECT_EQ(merges[15496 - 256], "H ello");
    EXPECT_EQ(f.get<uint32_t>("tokenizer.ggml.eos_token_id"), 50256u);
    EXPECT_EQ(f.get<uint32_t>("tokenizer.ggml.bos_token_id"), 50256u);

    // Every tensor llama.cpp's gpt2 loader asks for, with its shape, and nothing else.
    std::map<std::string, std::vector<uint64_t>> expected = {
        {"token_embd.weight", {32, 50257}}, {"position_embd.weight", {32, 16}},
        {"output_norm.weight", {32}}, {"output_norm.bias", {32}}};
    for (int l = 0; l < 2; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      expected[b + "attn_norm.weight"] = expected[b + "attn_norm.bias"] = {32};
      expected[b + "attn_qkv.weight"] = {32, 96};
      expected[b + "attn_qkv.bias"] = {96};
      expected[b + "attn_output.weight"] = {32, 32};
      expected[b + "attn_output.bias"] = {32};
      expected[b + "ffn_norm.weight"] = expected[b + "ffn_norm.bias"] = {32};
      expected[b + "ffn_up.weight"] = {32, 128};
      expected[b + "ffn_up.bias"] = {128};
      expected[b + "ffn_down.weight"] = {128, 32};
      expected[b + "ffn_down.bias"] = {32};
    }
    ASSERT_EQ(f.tensors.size(), expected.size());
    for (const auto& [tname, ne] : expected) {
      ASSERT_TRUE(f.tensors.count(tname)) << tname;
      const GgufTensor& t = f.tensors.at(tname);
      EXPECT_EQ(t.ne, ne) << tname;
      EXPECT_EQ(t.type, ne.size() == 1 ? 0u : static_cast<uint32_t>(type)) << tname;
    }

    // Values: matrices hold one output per row of ne[0] inputs (Conv1D weights transposed).
    const auto& layout = model.layout();
    auto param = [&](const std::string& hf) {
      for (const auto& p : layout)
        if (p.name == hf) return model.params() + p.offset;
      throw std::runtime_error("no " + hf);
    };
    auto check = [&](const std::string& gg, auto expected_at, size_t n) {
      const GgufTensor& t = f.tensors.at(gg);
      for (size_t k = 0; k < n; ++k) {
        const float want = expected_at(k);
        float amax = 0;  // of the q8_0 block
        for (size_t j = k / 32 * 32; j < k / 32 * 32 + 32 && t.type == 8; ++j) amax = std::max(amax, std::fabs(expected_at(j)));
        // f16: half an ulp (2^-11 relative) or half the smallest subnormal step (2^-25).
        const float f16 = std::fabs(want) / 2048 + 3e-8f;
        const float tol = t.type == 0 ? 0.0f : t.type == 1 ? f16 : amax / 127 * 0.51f + f16;
        ASSERT_NEAR(stored_value(t, k), want, tol) << gg << " value " << k;
      }
    };
    const float* qkv = param("transformer.h.1.attn.c_attn.weight");  // [C, 3C]
    check("blk.1.attn_qkv.weight", [&](size_t k) { return qkv[(k % C) * 3 * C + k / C]; }, 3 * C * C);
    const float* down = param("transformer.h.0.mlp.c_proj.weight");  // [4C, C]
    check("blk.0.ffn_down.weight", [&](size_t k) { return down[(k % (4 * C)) * C + k / (4 * C)]; }, 4 * C * C);
    const float* wte = param("transformer.wte.weight");
    check("token_embd.weight", [&](size_t k) { return wte[k]; }, 2000 * C);
    const float* ln = param("transformer.h.1.ln_2.bias");
    check("blk.1.ffn_norm.bias", [&](size_t k) { return ln[k]; }, C);
  }
}

TEST(GgufExport, SaysWhyQ8_0CannotRepresentAWidthThatIsNotWholeBlocks) {
  TempDir dir;
  GPT model(small_config(48));
  model.init_weights(1);
  const auto tok = load_tokenizer("gpt2");
  try {
    infer::export_gguf(model, *tok, GgmlType::Q8_0, "x", dir / "x.gguf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a multiple of 32"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "x.gguf"));
  infer::export_gguf(model, *tok, GgmlType::F16, "x", dir / "x.gguf");  // f16 can
  EXPECT_EQ(read_gguf(dir / "x.gguf").tensors.at("blk.0.ffn_up.weight").ne, (std::vector<uint64_t>{48, 192}));
  EXPECT_THROW(infer::parse_gguf_type("q4_0", "--type"), Error);
}

bool have_llama_cpp() {
  return fs::exists(std::string(LOOM_NPM_DIR) + "/node-llama-cpp/package.json") &&
         fs::exists(std::string(LOOM_NPM_DIR) + "/@node-llama-cpp/linux-x64/package.json");
}

std::vector<int32_t> parse_ids(const std::string& line) {
  std::istringstream in(line);
  std::vector<int32_t> ids;
  for (int32_t x; in >> x;) ids.push_back(x);
  return ids;
}

// The exported model in llama.cpp continues prompts greedily with loom generate's tokens, and
// its embedded tokenizer splits the prompts into Loom's ids. Bad exports are refused.
TEST(GgufExport, LlamaCppContinuesPromptsLikeLoomGenerate) {
  if (!have_llama_cpp()) GTEST_SKIP() << "node-llama-cpp is not installed under " << LOOM_NPM_DIR << " (scripts/setup.sh installs it)";
  TempDir dir;
  const std::string ckpt = train_tiny_gpt2(dir);
  const std::vector<std::string> texts = {"The quick brown", "Knowledge is", "All that glitters"};
  const auto tok = load_tokenizer("gpt2");
  constexpr int kNew = 16;
  nlohmann::json prompts = nlohmann::json::array();
  std::vector<std::vector<int32_t>> loom_out;
  for (const auto& t : texts) {
    prompts.push_back(tok->encode(t));
    const Result r = loom_cli("generate --checkpoint " + ckpt + " --prompt '" + t +
                              "' --temperature 0 --ignore_eos --max_new_tokens " + std::to_string(kNew) + " --print_ids");
    ASSERT_EQ(r.rc, 0) << r.out;
    loom_out.push_back(parse_ids(r.out));
  }
  for (const std::string type : {"f32", "f16", "q8_0"}) {
    SCOPED_TRACE(type);
    const std::string gguf = dir / ("m-" + type + ".gguf");
    const Result e = loom_cli("export --checkpoint " + ckpt + " --format gguf --type " + type + " --out " + gguf);
    ASSERT_EQ(e.rc, 0) << e.out;
    const nlohmann::json req = {{"model", gguf}, {"prompts", prompts}, {"texts", texts},
                                {"max_new_tokens", kNew}, {"threads", 1}};
    std::ofstream(dir / "req.json") << req.dump();
    const Result r = run_bounded("env LOOM_NPM_DIR=" + std::string(LOOM_NPM_DIR) + " node " +
                                 std::string(LOOM_SOURCE_DIR) + "/scripts/llama_cpp.mjs \"$(cat " + (dir / "req.json") + ")\"", 120);
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto out = nlohmann::json::parse(r.out.substr(r.out.find('{')));
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(out["tokenized"][i].get<std::vector<int32_t>>(), prompts[i].get<std::vector<int32_t>>()) << texts[i];
      const auto got = out["generated"][i].get<std::vector<int32_t>>();
      ASSERT_EQ(got.size(), static_cast<size_t>(kNew)) << texts[i];
      size_t agree = 0;
      while (agree < got.size() && got[agree] == loom_out[i][agree]) ++agree;
      std::printf("%s '%s': llama.cpp agrees with loom generate on %zu/%d tokens\n", type.c_str(), texts[i].c_str(), agree, kNew);
      EXPECT_GE(agree, type == "q8_0" ? 8u : static_cast<size_t>(kNew)) << texts[i];
    }
  }

  // Bad input: existing --out (unchanged without --force), unknown type, damaged checkpoint.
  const std::string f32 = dir / "m-f32.gguf";
  const auto before = fs::file_size(f32);
  const Result again = loom_cli("export --checkpoint " + ckpt + " --format gguf --type f16 --out " + f32);
  EXPECT_NE(again.rc, 0);
  EXPECT_NE(again.out.find("already exists"), std::string::npos) << again.out;
  EXPECT_EQ(fs::file_size(f32), before);
  EXPECT_EQ(loom_cli("export --checkpoint " + ckpt + " --format gguf --type f16 --force --out " + f32).rc, 0);
  EXPECT_LT(fs::file_size(f32), before);
  const Result bad_type = loom_cli("export --checkpoint " + ckpt + " --format gguf --type q4_0 --out " + (dir / "q4.gguf"));
  EXPECT_NE(bad_type.rc, 0);
  EXPECT_NE(bad_type.out.find("--type"), std::string::npos) << bad_type.out;
  const std::string damaged = dir / "damaged";
  fs::copy(resolve_checkpoint(ckpt), damaged);
  {
    std::fstream f(damaged + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  const Result bad_ckpt = loom_cli("export --checkpoint " + damaged + " --format hf --out " + (dir / "hf"));
  EXPECT_NE(bad_ckpt.rc, 0);
  EXPECT_NE(bad_ckpt.out.find("model.safetensors"), std::string::npos) << bad_ckpt.out;
  EXPECT_FALSE(fs::exists(dir / "hf"));
  EXPECT_FALSE(fs::exists(dir / "hf.tmp-export"));
}

}  // namespace
}  // namespace loom::testing
