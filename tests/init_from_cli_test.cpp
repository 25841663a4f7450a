// `loom train --init_from`: a run starts from a Hugging Face GPT-2 directory (as `loom export
// --format hf` writes it, prefix-less, sharded, with a stored tied lm_head and mask buffers) or
// a Loom checkpoint, at 1 rank and at tp 2; `eval`/`generate` read the same directories. Weights
// and data of different tokenizers are refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "train_cli_util.hpp"

namespace loom::testing {
namespace {
namespace fs = std::filesystem;

double first_loss(const std::string& out_dir) {
  const auto losses = train_losses(out_dir + "/metrics.jsonl");
  return losses.count(1) ? losses.at(1) : NAN;
}

std::string eval_loss(const std::string& model, const std::string& data) {
  const Result r = loom_cli("eval --checkpoint " + model + " --data_dir " + data + " --seq_len 32 --batch_size 2");
  std::smatch m;
  const std::regex re(R"(loss ([0-9.]+))");
  return r.rc == 0 && std::regex_search(r.out, m, re) ? m[1].str() : "failed: " + r.out;
}

// The HF export rewritten: names without "transformer.", lm_head.weight (= wte) and attention
// mask buffers added; or (sharded) the tensors split over two files with an index.
void rewrite_hf(const std::string& from, const std::string& to, bool sharded, bool untie = false) {
  fs::create_directories(to);
  fs::copy_file(from + "/config.json", to + "/config.json");
  const auto file = SafetensorsFile::load(from + "/model.safetensors");
  const auto wte = file.data("transformer.wte.weight");
  std::vector<uint8_t> head(wte.begin(), wte.end());
  if (untie) head[5] ^= 0x40;
  const std::vector<float> mask(32 * 32, 1.0f);
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, e] : file.tensors())
    tensors.push_back({sharded ? name : name.substr(std::string("transformer.").size()), e.dtype,
                       e.shape, file.data(name).data()});
  if (!sharded) {
    tensors.push_back({"lm_head.weight", "F32", file.entry("transformer.wte.weight").shape, head.data()});
    tensors.push_back({"h.0.attn.bias", "F32", {1, 1, 32, 32}, mask.data()});
    write_safetensors(to + "/model.safetensors", tensors, {{"format", "pt"}});
    return;
  }
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  const size_t half = tensors.size() / 2;
  const std::string names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  for (int part = 0; part < 2; ++part) {
    const std::vector<TensorToWrite> mine(tensors.begin() + (part ? half : 0),
                                          part ? tensors.end() : tensors.begin() + half);
    write_safetensors(to + "/" + names[part], mine, {{"format", "pt"}});
    for (const auto& t : mine) index["weight_map"][t.name] = names[part];
  }
  std::ofstream(to + "/model.safetensors.index.json") << index.dump(2);
}

TEST(InitFromCli, HuggingFaceAndLoomWeightsStartARunAtAnyLayout) {
  TempDir dir;
  const std::string config = make_run(dir, "the quick brown fox jumps over the lazy dog. ", 60);
  const Result trained = loom_cli("train --config " + config);
  ASSERT_EQ(trained.rc, 0) << trained.out;
  const std::string ckpt = dir / "out/latest", hf = dir / "hf", data = dir / "data";
  const Result exported = loom_cli("export --checkpoint " + ckpt + " --format hf --out " + hf);
  ASSERT_EQ(exported.rc, 0) << exported.out;

  // The first step's loss is the loaded weights' loss on batch 1: the same from the checkpoint
  // and from its HF export, at 1 rank and at tp 2; well below a fresh model's.
  const std::string init = "train --config " + config + " --max_steps 2 --warmup_steps 0 --eval_freq 0 --init_from ";
  const Result from_ckpt = loom_cli(init + ckpt + " --out_dir " + (dir / "a"));
  const Result from_hf = loom_cli(init + hf + " --out_dir " + (dir / "b"));
  const Result from_hf_tp = loom_cli(init + hf + " --out_dir " + (dir / "c") + " --nproc 2 --tp 2");
  ASSERT_EQ(from_ckpt.rc, 0) << from_ckpt.out;
  ASSERT_EQ(from_hf.rc, 0) << from_hf.out;
  ASSERT_EQ(from_hf_tp.rc, 0) << from_hf_tp.out;
  EXPECT_NE(from_hf.out.find("initialised from " + hf), std::string::npos) << from_hf.out;
  const double fresh = first_loss(dir / "out"), loss = first_loss(dir / "b");
  EXPECT_EQ(first_loss(dir / "a"), loss);
  EXPECT_NEAR(first_loss(dir / "c"), loss, 1e-5 * loss);
  // A fresh model starts at ~ln(257) = 5.55; 20 trained steps are over a nat below.
  EXPECT_LT(loss, fresh - 1.0) << "the weights were not loaded (fresh model's loss " << fresh << ")";
  EXPECT_TRUE(fs::exists(dir / "b/step_000002"));  // from step 0: a fresh step count

  // Prefix-less with a stored (tied) lm_head and mask buffers, and sharded: the same weights.
  rewrite_hf(hf, dir / "noprefix", false);
  rewrite_hf(hf, dir / "sharded", true);
  const std::string expected = eval_loss(ckpt, data);
  ASSERT_EQ(expected.find("failed"), std::string::npos) << expected;
  EXPECT_EQ(eval_loss(hf, data), expected);
  EXPECT_EQ(eval_loss(dir / "noprefix", data), expected);
  EXPECT_EQ(eval_loss(dir / "sharded", data), expected);
  const std::string gen = " --prompt 'the q' --max_new_tokens 20 --print_ids --ignore_eos";
  const Result g_ckpt = loom_cli("generate --checkpoint " + ckpt + gen);
  EXPECT_EQ(loom_cli("generate --checkpoint " + (dir / "sharded") + gen).out, g_ckpt.out);
  const Result from_sharded = loom_cli(init + (dir / "sharded") + " --out_dir " + (dir / "d"));
  ASSERT_EQ(from_sharded.rc, 0) << from_sharded.out;
  EXPECT_EQ(first_loss(dir / "d"), loss);

  // Refused before anything is written: another shape (the field named), an untied head, both
  // --init_from and --resume.
  const Result shape = loom_cli(init + hf + " --out_dir " + (dir / "e") + " --n_layer 3");
  EXPECT_NE(shape.rc, 0);
  EXPECT_NE(shape.out.find("n_layer: " + hf + " has 2, this run 3"), std::string::npos) << shape.out;
  EXPECT_FALSE(fs::exists(dir / "e"));
  rewrite_hf(hf, dir / "untied", false, /*untie=*/true);
  const Result untied = loom_cli(init + (dir / "untied") + " --out_dir " + (dir / "f"));
  EXPECT_NE(untied.rc, 0);
  EXPECT_NE(untied.out.find("lm_head.weight differs from wte.weight"), std::string::npos) << untied.out;
  const Result both = loom_cli(init + hf + " --out_dir " + (dir / "g") + " --resume " + ckpt);
  EXPECT_NE(both.rc, 0);
  EXPECT_NE(both.out.find("not both"), std::string::npos) << both.out;

  // Tokenizer identity: byte-level weights on GPT-2 token data are refused by train (resume,
  // init_from) and eval, naming both tokenizers.
  const std::string gpt2_data = dir / "gpt2-data";
  fs::copy(data, gpt2_data);
  std::ofstream(gpt2_data + "/meta.json") << R"({"tokenizer": "gpt2"})";
  const std::string mismatch = "was trained with the byte tokenizer, but " + gpt2_data + " holds gpt2";
  for (const std::string& cmd :
       {"train --config " + config + " --data_dir " + gpt2_data + " --out_dir " + (dir / "h") + " --resume " + ckpt,
        init + hf + " --data_dir " + gpt2_data + " --out_dir " + (dir / "i"),
        "eval --checkpoint " + ckpt + " --data_dir " + gpt2_data}) {
    const Result r = loom_cli(cmd);
    EXPECT_NE(r.rc, 0) << cmd;
    EXPECT_NE(r.out.find(mismatch), std::string::npos) << cmd << "\n" << r.out;
  }
}

}  // namespace
}  // namespace loom::testing
