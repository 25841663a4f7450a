#include "loom/infer/cached_generate.hpp"

#include <algorithm>

#include "loom/core/check.hpp"

namespace loom::infer {

std::vector<std::vector<int32_t>> generate_cached(KVDecoder& decoder,
                                                  const std::vector<std::vector<int32_t>>& prompts,
                                                  int max_new_tokens, const SampleOptions& opts,
                                                  Rng& rng, const GenerateControl& control) {
  LOOM_CHECK(!prompts.empty(), "generate: no prompts");
  LOOM_CHECK(max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", max_new_tokens);
  const int S = static_cast<int>(prompts.size());
  const int ctx = decoder.config().context_len, V = decoder.config().vocab_size;
  size_t longest = 0;
  for (const auto& p : prompts) {
    LOOM_CHECK(!p.empty(), "generate: prompt ", &p - prompts.data(), " is empty");
    longest = std::max(longest, p.size());
  }
  // A step feeds the last token back, so the cache holds at most prompt + max_new - 1 tokens.
  const int capacity = static_cast<int>(std::min<size_t>(ctx, longest + std::max(0, max_new_tokens - 1)));
  decoder.start(S, std::max(1, capacity));
  std::vector<std::vector<int32_t>> texts = prompts, out(S);
  std::vector<int> active(S);  // sequences still generating, in prompt order
  for (int s = 0; s < S; ++s) active[s] = s;
  std::vector<int> seqs;
  std::vector<int32_t> tokens;
  std::vector<uint8_t> want;
  for (int i = 0; i < max_new_tokens && !active.empty(); ++i) {
    seqs.clear();
    tokens.clear();
    want.clear();
    for (const int s : active) {
      const auto& t = texts[s];
      // Feed what the cache lacks: the whole (cropped) text first, then the newest token; a full
      // cache is recomputed over the crop (see the header).
      size_t from = decoder.length(s) == 0 ? 0 : t.size() - 1;
      if (decoder.length(s) >= capacity) {
        decoder.reset(s);
        from = 0;
      }
      if (from == 0 && t.size() > static_cast<size_t>(ctx)) from = t.size() - ctx;
      for (size_t j = from; j < t.size(); ++j) {
        seqs.push_back(s);
        tokens.push_back(t[j]);
        want.push_back(j + 1 == t.size());
      }
    }
    const float* logits = decoder.forward(seqs, tokens, want);  // (active, V)
    std::vector<int> still;
    for (size_t a = 0; a < active.size(); ++a) {
      const int s = active[a];
      const int32_t next = sample_token(logits + a * V, V, opts, rng);
      if (next == control.stop_token) continue;
      texts[s].push_back(next);
      out[s].push_back(next);
      if (control.on_token) control.on_token(s, next);
      still.push_back(s);
    }
    active = std::move(still);
  }
  return out;
}

}  // namespace loom::infer
