// `loom export`: a checkpoint as files other engines load: GGUF for llama.cpp (f32, f16, q8_0)
// or a Hugging Face GPT-2 directory (transformers' GPT2LMHeadModel and GPT2TokenizerFast).
#include <filesystem>
#include <iostream>
#include <memory>

#include "command_registry.hpp"
#include "loom/core/check.hpp"
#include "loom/data/tokenizer.hpp"
#include "loom/infer/checkpoint_model.hpp"
#include "loom/infer/gguf_export.hpp"
#include "loom/infer/hf_export.hpp"

namespace {

namespace fs = std::filesystem;

struct Options {
  std::string checkpoint;
  std::string format;
  std::string type;
  std::string out;
  std::string tokenizer;
  std::string name = "loom-gpt2";
  bool force = false;
};

int run(const Options& o) {
  LOOM_CHECK(o.format == "gguf" || o.format == "hf", "--format: expected gguf or hf, got '",
             o.format, "'");
  const std::string type = o.type.empty() ? "f32" : o.type;
  const auto gguf_type = loom::infer::parse_gguf_type(type, "--type");
  LOOM_CHECK(o.format == "gguf" || type == "f32",
             "--type: the hf format stores f32 weights (model.safetensors); got '", type, "'");
  LOOM_CHECK(o.force || !fs::exists(o.out), "--out: ", o.out,
             " already exists (--force replaces it)");
  // Everything is read and checked (checksums, shapes, vocabulary) before anything is written.
  const auto ckpt = loom::infer::load_checkpoint_model(o.checkpoint);
  const auto tokenizer = loom::load_tokenizer(o.tokenizer.empty() ? ckpt.state.tokenizer : o.tokenizer);
  if (o.format == "gguf") {
    LOOM_CHECK(!fs::is_directory(o.out), "--out: ", o.out, " is a directory; gguf needs a file name");
    loom::infer::export_gguf(*ckpt.model, *tokenizer, gguf_type, o.name, o.out);
  } else {
    // Built next to the target and renamed over it, so a failed export leaves no half directory.
    const std::string tmp = o.out + ".tmp-export";
    fs::remove_all(tmp);
    try {
      loom::infer::export_hf(*ckpt.model, *tokenizer, tmp);
    } catch (...) {
      fs::remove_all(tmp);
      throw;
    }
    fs::remove_all(o.out);
    fs::rename(tmp, o.out);
  }
  std::cout << "exported " << ckpt.dir << " as " << o.format
            << (o.format == "gguf" ? " " + type : std::string()) << " to " << o.out << "\n";
  return 0;
}

}  // namespace

static const bool registered = loom::cli::register_command(
    "export", "Export a checkpoint for llama.cpp (GGUF) or Hugging Face transformers",
    [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--checkpoint", o->checkpoint, "checkpoint directory, a `latest` file, or a run directory (its latest)")
          ->required();
      app.add_option("--format", o->format, "gguf (llama.cpp) or hf (Hugging Face directory)")
          ->required();
      app.add_option("--type", o->type, "gguf weight type: f32, f16 or q8_0 (default f32)");
      app.add_option("--out", o->out, "output file (gguf) or directory (hf)")->required();
      app.add_option("--tokenizer", o->tokenizer, "gpt2 or byte (default: the checkpoint's)");
      app.add_option("--name", o->name, "model name stored in the GGUF metadata")->capture_default_str();
      app.add_flag("--force", o->force, "replace an existing --out");
      app.footer("  loom export --checkpoint runs/tiny/latest --format gguf --type q8_0 --out tiny.gguf\n"
                 "  loom export --checkpoint runs/tiny/latest --format hf --out tiny-hf");
      return [o] { return run(*o); };
    });
