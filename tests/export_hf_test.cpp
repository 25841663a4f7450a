#include "loom/infer/hf_export.hpp"

#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "loom/core/check.hpp"
#include "loom/data/pretokenizer.hpp"
#include "loom/io/safetensors.hpp"
#include "temp_dir.hpp"
#include "train_cli_util.hpp"

namespace loom::testing {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

GPTConfig config(bool qkv_bias) {
  GPTConfig c;
  c.vocab_size = 50257;
  c.context_len = 16;
  c.n_layer = 2;
  c.n_head = 4;
  c.d_model = 32;
  c.qkv_bias = qkv_bias;
  return c;
}

TEST(HfExport, DirectoryHoldsGpt2sFilesNamesShapesAndConfigKeys) {
  for (bool qkv_bias : {true, false}) {
    SCOPED_TRACE(qkv_bias ? "qkv bias" : "no qkv bias");
    TempDir dir;
    GPT model(config(qkv_bias));
    model.init_weights(3);
    const std::string out = dir / "hf";
    infer::export_hf(model, *load_tokenizer("gpt2"), out);
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(out)) files.insert(e.path().filename());
    EXPECT_EQ(files, (std::set<std::string>{"config.json", "model.safetensors", "vocab.json",
                                            "merges.txt", "tokenizer_config.json"}));

    const auto cfg = read_json(out + "/config.json");
    EXPECT_EQ(cfg["model_type"], "gpt2");
    EXPECT_EQ(cfg["architectures"], nlohmann::json::array({"GPT2LMHeadModel"}));
    EXPECT_EQ(cfg["vocab_size"], 50257);
    EXPECT_EQ(cfg["n_positions"], 16);
    EXPECT_EQ(cfg["n_embd"], 32);
    EXPECT_EQ(cfg["n_layer"], 2);
    EXPECT_EQ(cfg["n_head"], 4);
    EXPECT_EQ(cfg["activation_function"], "gelu_new");
    EXPECT_DOUBLE_EQ(cfg["layer_norm_epsilon"].get<double>(), 1e-5);
    EXPECT_EQ(cfg["bos_token_id"], 50256);
    EXPECT_EQ(cfg["eos_token_id"], 50256);
    EXPECT_TRUE(cfg["n_inner"].is_null());
    EXPECT_EQ(cfg["tie_word_embeddings"], true);

    // GPT2LMHeadModel's state dict (lm_head.weight is tied to wte and not stored).
    const auto st = SafetensorsFile::load(out + "/model.safetensors");
    EXPECT_EQ(st.metadata().at("format"), "pt");
    std::map<std::string, std::vector<int64_t>> expected = {
        {"transformer.wte.weight", {50257, 32}}, {"transformer.wpe.weight", {16, 32}},
        {"transformer.ln_f.weight", {32}}, {"transformer.ln_f.bias", {32}}};
    for (int l = 0; l < 2; ++l) {
      const std::string h = "transformer.h." + std::to_string(l) + ".";
      for (const char* ln : {"ln_1", "ln_2"}) expected[h + ln + ".weight"] = expected[h + ln + ".bias"] = {32};
      expected[h + "attn.c_attn.weight"] = {32, 96};
      expected[h + "attn.c_attn.bias"] = {96};
      expected[h + "attn.c_proj.weight"] = {32, 32};
      expected[h + "attn.c_proj.bias"] = {32};
      expected[h + "mlp.c_fc.weight"] = {32, 128};
      expected[h + "mlp.c_fc.bias"] = {128};
      expected[h + "mlp.c_proj.weight"] = {128, 32};
      expected[h + "mlp.c_proj.bias"] = {32};
    }
    ASSERT_EQ(st.tensors().size(), expected.size());
    for (const auto& [name, shape] : expected) {
      ASSERT_TRUE(st.tensors().count(name)) << name;
      EXPECT_EQ(st.entry(name).dtype, "F32") << name;
      EXPECT_EQ(st.entry(name).shape, shape) << name;
    }
    for (const auto& p : model.layout()) {  // the parameters, bit for bit
      const auto bytes = st.data(p.name);
      ASSERT_EQ(bytes.size(), p.numel * 4) << p.name;
      EXPECT_EQ(std::memcmp(bytes.data(), model.params() + p.offset, bytes.size()), 0) << p.name;
    }
    if (!qkv_bias) {
      const auto b = st.data("transformer.h.1.attn.c_attn.bias");
      EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == 0; }));
    }

    const auto vocab = read_json(out + "/vocab.json");
    EXPECT_EQ(vocab.size(), 50257u);
    EXPECT_EQ(vocab["<|endoftext|>"], 50256);
    EXPECT_EQ(vocab["Hello"], 15496);
    EXPECT_EQ(vocab["\xC4\xA0world"], 995);  // " world"
    // merges.txt is byte-identical to OpenAI's GPT-2 vocab.bpe (the SHA-256 tiktoken checks).
    const Result sha = run_bounded("sha256sum " + out + "/merges.txt", 30);
    EXPECT_EQ(sha.out.substr(0, 64), "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5");
    const auto tc = read_json(out + "/tokenizer_config.json");
    EXPECT_EQ(tc["eos_token"], "<|endoftext|>");
    EXPECT_EQ(tc["model_max_length"], 16);
    EXPECT_EQ(tc["add_prefix_space"], false);
  }
}

// GPT-2's byte -> unicode table, written from its definition: the printable Latin-1 bytes keep
// their code point, the others are numbered from U+0100 in byte order.
std::string byte_char(unsigned char b) {
  int n = 0;
  for (int x = 0; x < b; ++x) n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174);
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const int cp = printable ? b : 256 + n;
  std::string s;
  if (cp < 0x80) return std::string(1, static_cast<char>(cp));
  s += static_cast<char>(0xC0 | (cp >> 6));
  s += static_cast<char>(0x80 | (cp & 0x3F));
  return s;
}

// Encodes text the way GPT-2's own encoder.py does with vocab.json + merges.txt: pre-split, map
// bytes to characters, then repeatedly merge the adjacent pair of lowest merge rank.
std::vector<int32_t> encode_with_files(const std::string& text, const nlohmann::json& vocab,
                                       const std::map<std::pair<std::string, std::string>, int>& ranks) {
  Pretokenizer pre;
  std::vector<std::string_view> pieces;
  pre.split(text, pieces);
  std::vector<int32_t> ids;
  for (std::string_view piece : pieces) {
    std::vector<std::string> word;
    for (unsigned char b : piece) word.push_back(byte_char(b));
    while (word.size() > 1) {
      int best = INT_MAX;
      size_t at = 0;
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        auto it = ranks.find({word[i], word[i + 1]});
        if (it != ranks.end() && it->second < best) best = it->second, at = i;
      }
      if (best == INT_MAX) break;
      word[at] += word[at + 1];
      word.erase(word.begin() + at + 1);
    }
    for (const auto& w : word) ids.push_back(vocab.at(w).get<int32_t>());
  }
  return ids;
}

TEST(HfExport, VocabAndMergesRetokenizeTextToLoomsIds) {
  TempDir dir;
  GPT model(config(true));
  const auto tok = load_tokenizer("gpt2");
  infer::export_hf(model, *tok, dir / "hf");
  const auto vocab = read_json(dir / "hf/vocab.json");
  std::ifstream in(dir / "hf/merges.txt");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "#version: 0.2");
  std::map<std::pair<std::string, std::string>, int> ranks;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    ranks[{line.substr(0, sp), line.substr(sp + 1)}] = static_cast<int>(ranks.size());
  }
  EXPECT_EQ(ranks.size(), 50000u);
  for (const std::string text :
       {"Hello world, 萧炎,斗之力,三段", "The meaning of life is 42!\n\n  indented\tcode();",
        "I'll say it's naïve — don't you think? 🤖🎉 1234567", "<|endoftext|> is plain text here"}) {
    EXPECT_EQ(encode_with_files(text, vocab, ranks), tok->encode(text)) << text;
  }
}

TEST(HfExport, RefusesAnExistingDirectoryAndAByteVocabularyHasNoMerges) {
  TempDir dir;
  GPTConfig c = config(true);
  c.vocab_size = 260;  // the byte tokenizer's 257 ids, padded
  GPT model(c);
  fs::create_directories(dir / "taken");
  EXPECT_THROW(infer::export_hf(model, *load_tokenizer("byte"), dir / "taken"), Error);
  infer::export_hf(model, *load_tokenizer("byte"), dir / "hf");
  const auto vocab = read_json(dir / "hf/vocab.json");
  EXPECT_EQ(vocab.size(), 260u);
  EXPECT_EQ(vocab["A"], 65);  // byte 65
  EXPECT_EQ(vocab["\xC4\xA0"], 32);  // the space byte
  EXPECT_EQ(vocab["<|endoftext|>"], 256);
  EXPECT_EQ(vocab["<|pad_259|>"], 259);
  std::ifstream merges(dir / "hf/merges.txt");
  std::stringstream all;
  all << merges.rdbuf();
  EXPECT_EQ(all.str(), "#version: 0.2\n");
  GPTConfig small = c;
  small.vocab_size = 200;  // smaller than the tokenizer's vocabulary
  GPT too_small(small);
  EXPECT_THROW(infer::export_hf(too_small, *load_tokenizer("byte"), dir / "hf2"), Error);
}

}  // namespace
}  // namespace loom::testing
