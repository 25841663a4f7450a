#pragma once
// Validation loss and perplexity of a model over the windows of a token dataset, on one rank or
// collectively over many: window k is scored by rank k % world and the loss sums are all-reduced,
// so every world size gives the same figures (up to float summation order).
#include <cstddef>
#include <cstdint>

#include "loom/comm/communicator.hpp"
#include "loom/data/window_dataset.hpp"
#include "loom/infer/decoder_linear.hpp"
#include "loom/model/gpt.hpp"

namespace loom::infer {

struct EvalOptions {
  int batch = 8;            // windows per forward
  size_t max_windows = 0;   // 0: every window; else this many, spread evenly over the data
  WeightType weights = WeightType::F32;  // F32: the training forward; Int8: the KV decoder
};

struct EvalResult {
  double loss = 0;        // mean cross-entropy per token (nats)
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // predictions scored, over all ranks
  int64_t windows = 0;
};

// `data`'s windows must have a length <= the model's context_len. comm == nullptr: one rank.
EvalResult evaluate(GPT& model, const WindowDataset& data, int seq_len, const EvalOptions& opts,
                    comm::Communicator* comm);

}  // namespace loom::infer
