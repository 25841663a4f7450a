#pragma once
// Generation with the KV cache, for one or many prompts at once. Same results as
// loom::generate (model/generate.hpp) for each prompt: the same tokens greedily, and the same
// samples for a single prompt given the same Rng (sequences draw in prompt order).
//
// Context longer than the model's window: loom::generate crops the text to its last context_len
// tokens at every step, and positions restart at 0 in the crop. The cache keeps that exact
// behaviour: when a sequence's cache is full, it is emptied and recomputed (one prefill) over the
// cropped text at every step from then on. That costs a full pass per token beyond the window,
// as the no-cache path; llama.cpp's context shift (drop half, keep going) would be cheaper but
// gives different tokens than the cropped model, which a learned absolute position embedding
// cannot make equal.
#include <cstdint>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/infer/kv_decoder.hpp"
#include "loom/model/generate.hpp"

namespace loom::infer {

// Returns the (up to) max_new_tokens new tokens of each (non-empty) prompt. A sequence that
// samples control.stop_token ends there (the others go on; it draws no more samples);
// control.on_token(s, token) sees each returned token of sequence s as soon as it is sampled.
std::vector<std::vector<int32_t>> generate_cached(KVDecoder& decoder,
                                                  const std::vector<std::vector<int32_t>>& prompts,
                                                  int max_new_tokens, const SampleOptions& opts,
                                                  Rng& rng, const GenerateControl& control = {});

}  // namespace loom::infer
