#pragma once
// Which tokenizer a data directory's shards were written with, and the check that a model and
// its data agree on it (a model trained on GPT-2 ids scores byte ids without a word otherwise).
#include <string>

namespace loom {

// <data_dir>/meta.json's "tokenizer" (`loom tokenize` writes it); "gpt2" without meta.json or
// without the field (llm.c's shards are GPT-2's).
std::string data_tokenizer(const std::string& data_dir);

// Errors unless `model_tokenizer` (of `model`, e.g. a checkpoint directory) is the data's; the
// message names both.
void check_same_tokenizer(const std::string& model_tokenizer, const std::string& model,
                          const std::string& data_dir);

}  // namespace loom
