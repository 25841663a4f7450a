#pragma once
// Text generation from a prompt: greedy, temperature and top-k sampling. No KV cache: every
// new token runs a forward over the (cropped) context.
#include <cstdint>
#include <functional>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/model/gpt.hpp"

namespace loom {

struct SampleOptions {
  float temperature = 1.0f;  // <= 0: greedy (argmax)
  int top_k = 0;             // > 0: sample among the k largest logits only; 0: all
};

// Next token from one row of logits[V]. Greedy returns the first index of the maximum; otherwise
// draws exactly one rng.uniform(), so a run is reproducible from the Rng's state.
template <typename T>
int32_t sample_token(const T* logits, int V, const SampleOptions& opts, Rng& rng);

// The generation loop: max_new_tokens tokens after `prompt` (non-empty), each one
// next(window, n), the token after the last n (<= context_len) tokens of prompt + generated text.
// Returns only the new tokens.
std::vector<int32_t> generate_tokens(const std::vector<int32_t>& prompt, int max_new_tokens,
                                     int context_len,
                                     const std::function<int32_t(const int32_t*, int)>& next);

// Generates max_new_tokens tokens after `prompt` (non-empty) and returns only the new ones. The
// model sees at most the last context_len tokens of prompt + generated text. Under tensor
// parallelism every tp rank calls it with the same rng state (it is collective over the group)
// and they all get the same tokens.
template <typename T>
std::vector<int32_t> generate(GPTModel<T>& model, const std::vector<int32_t>& prompt,
                              int max_new_tokens, const SampleOptions& opts, Rng& rng);

}  // namespace loom
