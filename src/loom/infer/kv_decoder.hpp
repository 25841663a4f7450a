#pragma once
// GPT-2 inference with a KV cache: the incremental form of ChunkExecutor::forward. Each new token runs
// through the blocks once, appends its keys and values to its sequence's cache and attends to
// everything cached before it, so generating n tokens costs n single-row passes instead of n
// passes over the whole context. Many sequences run together (batched prompts): their rows share
// every GEMM. Weights are read from the model (f32, no copy) or quantised to int8 once
// (per-output-channel scales, see int8_matrix.hpp; the tied embedding too).
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "loom/infer/decoder_linear.hpp"
#include "loom/model/gpt.hpp"

namespace loom::infer {

class KVDecoder {
 public:
  // The model must outlive the decoder (f32 weights are views of its parameters).
  KVDecoder(const GPT& model, WeightType weights);
  ~KVDecoder();
  KVDecoder(const KVDecoder&) = delete;
  KVDecoder& operator=(const KVDecoder&) = delete;

  const GPTConfig& config() const;
  WeightType weight_type() const;

  // Empties the cache and sizes it for n_seqs sequences of up to `capacity` tokens each
  // (capacity <= context_len).
  void start(int n_seqs, int capacity);
  // Empties one sequence's cache (its next token is position 0 again).
  void reset(int seq);
  int length(int seq) const;  // tokens cached for `seq`

  // Appends rows to the sequences' caches in order: row i is token tokens[i] of sequence
  // seqs[i], at that sequence's next position (a sequence may appear several times: a prompt).
  // Returns the logits (R, V) of the rows with want_logits[i], in row order; valid until the next
  // call. Errors (nothing cached) if a sequence would exceed its capacity or a token is out of
  // range.
  const float* forward(std::span<const int> seqs, std::span<const int32_t> tokens,
                       std::span<const uint8_t> want_logits);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::infer
