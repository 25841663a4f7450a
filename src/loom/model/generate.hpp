#pragma once
// Text generation from a prompt: greedy, temperature, top-k and top-p (nucleus) sampling; an
// optional stop token and a callback that sees each token as it is produced (streaming). No KV
// cache: every new token runs a forward over the (cropped) context.
#include <cstdint>
#include <functional>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/model/gpt.hpp"

namespace loom {

struct SampleOptions {
  float temperature = 1.0f;  // <= 0: greedy (argmax)
  int top_k = 0;             // > 0: sample among the k largest logits only; 0: all
  float top_p = 1.0f;        // in (0, 1]: then among the fewest most likely tokens (after top_k)
                             // whose probabilities sum to >= top_p (Holtzman et al. 2019); 1: all
};

// How a generation ends early and who sees its tokens as they come.
struct GenerateControl {
  int32_t stop_token = -1;  // >= 0: a sequence ends when it samples this id (not returned)
  // Called with (sequence index, token) for every returned token, as soon as it is sampled.
  std::function<void(int, int32_t)> on_token;
};

// Next token from one row of logits[V]. Greedy returns the first index of the maximum; otherwise
// draws exactly one rng.uniform(), so a run is reproducible from the Rng's state.
template <typename T>
int32_t sample_token(const T* logits, int V, const SampleOptions& opts, Rng& rng);

// The generation loop: up to max_new_tokens tokens after `prompt` (non-empty), each one
// next(window, n), the token after the last n (<= context_len) tokens of prompt + generated text;
// it ends early at control.stop_token. Returns only the new tokens (sequence index 0).
std::vector<int32_t> generate_tokens(const std::vector<int32_t>& prompt, int max_new_tokens,
                                     int context_len,
                                     const std::function<int32_t(const int32_t*, int)>& next,
                                     const GenerateControl& control = {});

// Generates up to max_new_tokens tokens after `prompt` (non-empty) and returns only the new ones. The
// model sees at most the last context_len tokens of prompt + generated text. Under tensor
// parallelism every tp rank calls it with the same rng state (it is collective over the group)
// and they all get the same tokens.
template <typename T>
std::vector<int32_t> generate(GPTModel<T>& model, const std::vector<int32_t>& prompt,
                              int max_new_tokens, const SampleOptions& opts, Rng& rng,
                              const GenerateControl& control = {});

}  // namespace loom
