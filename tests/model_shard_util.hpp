#pragma once
// Helpers for the tests of model shards (pipeline stages, tensor-parallel slices): one random
// whole model, loaded piece by piece into shards, and their gradients put back into whole
// tensors for comparison with the whole model's.
#include <map>
#include <string>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/model/gpt.hpp"

namespace loom::test {

inline GPTConfig shard_test_config(int n_layer = 2, int vocab = 37) {
  GPTConfig c;
  c.vocab_size = vocab;  // odd: padded under tp 2 and 4
  c.context_len = 8;
  c.n_layer = n_layer;
  c.n_head = 4;
  c.d_model = 16;
  return c;
}

// The whole model's parameters (gpt_param_layout order): GPT-2 init plus noise on every
// parameter, so that no gradient is trivially zero or symmetric.
inline std::vector<double> random_whole_params(const GPTConfig& cfg, uint64_t seed) {
  GPTModel<double> whole(cfg);
  whole.init_weights(seed);
  Rng rng(seed + 1);
  for (size_t i = 0; i < whole.num_params(); ++i) whole.params()[i] += 0.1 * rng.normal();
  return {whole.params(), whole.params() + whole.num_params()};
}

inline std::map<std::string, size_t> whole_offsets(const GPTConfig& cfg) {
  std::map<std::string, size_t> at;
  for (const auto& p : gpt_param_layout(cfg)) at[p.name] = p.offset;
  return at;
}

// Loads this shard's pieces of the whole parameters.
template <typename T>
void load_pieces(GPTModel<T>& m, const std::vector<double>& whole) {
  const auto at = whole_offsets(m.config());
  std::vector<double> piece;
  for (const auto& p : m.layout()) {
    piece.resize(p.numel);
    copy_from_whole(p, whole.data() + at.at(p.name), piece.data());
    for (size_t i = 0; i < p.numel; ++i) m.params()[p.offset + i] = static_cast<T>(piece[i]);
  }
}

// Adds this shard's gradient pieces into whole-model-sized `whole` (replicated tensors only
// when add_replicated).
inline void add_grad_pieces(const GPTModel<double>& m, std::vector<double>& whole,
                            bool add_replicated = true) {
  const auto at = whole_offsets(m.config());
  for (const auto& p : m.layout()) {
    if (p.replicated() && !add_replicated) continue;
    std::vector<double> w(p.whole_numel(), 0.0);
    copy_to_whole(p, m.grads() + p.offset, w.data());
    for (size_t i = 0; i < w.size(); ++i) whole[at.at(p.name) + i] += w[i];
  }
}

struct TokenBatch {
  int B = 2, T = 5;
  std::vector<int32_t> tokens, targets;
  TokenBatch(int V, uint64_t seed) {
    Rng rng(seed);
    for (int i = 0; i < B * T; ++i) {
      tokens.push_back(static_cast<int32_t>(rng.below(V)));
      targets.push_back(static_cast<int32_t>(rng.below(V)));
    }
  }
};

inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = a.size() == b.size() ? 0 : 1e300;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace loom::test
