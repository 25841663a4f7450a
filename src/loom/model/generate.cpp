#include "loom/model/generate.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "loom/core/check.hpp"
#include "loom/model/model_runner.hpp"

namespace loom {

template <typename T>
int32_t sample_token(const T* logits, int V, const SampleOptions& opts, Rng& rng) {
  LOOM_CHECK(V > 0, "sample_token: empty vocabulary");
  LOOM_CHECK(opts.top_k >= 0, "top_k must be >= 0, got ", opts.top_k);
  LOOM_CHECK(opts.top_p > 0 && opts.top_p <= 1, "top_p must be in (0, 1], got ", opts.top_p);
  if (opts.temperature <= 0) {
    return static_cast<int32_t>(std::max_element(logits, logits + V) - logits);
  }
  // Candidates in decreasing logit order (ties: lower id first), cut to top_k.
  std::vector<int32_t> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  int k = opts.top_k > 0 ? std::min(opts.top_k, V) : V;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  ids.resize(k);
  const double mx = logits[ids[0]];
  std::vector<double> w(k);
  double sum = 0;
  for (int i = 0; i < k; ++i) {
    w[i] = std::exp((static_cast<double>(logits[ids[i]]) - mx) / opts.temperature);
    sum += w[i];
  }
  if (opts.top_p < 1) {  // the nucleus: the shortest prefix of the sorted candidates reaching top_p
    const double target = static_cast<double>(opts.top_p) * sum;
    double kept = 0;
    int n = 0;
    while (n < k && kept < target) kept += w[n++];
    k = n;
    sum = kept;
  }
  const double u = static_cast<double>(rng.uniform()) * sum;
  double acc = 0;
  for (int i = 0; i < k; ++i) {
    acc += w[i];
    if (u < acc) return ids[i];
  }
  return ids[k - 1];  // u rounded up to sum
}

std::vector<int32_t> generate_tokens(const std::vector<int32_t>& prompt, int max_new_tokens,
                                     int context_len,
                                     const std::function<int32_t(const int32_t*, int)>& next,
                                     const GenerateControl& control) {
  LOOM_CHECK(!prompt.empty(), "generate: the prompt is empty");
  LOOM_CHECK(max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", max_new_tokens);
  std::vector<int32_t> text = prompt;
  std::vector<int32_t> out;
  for (int i = 0; i < max_new_tokens; ++i) {
    const int n = std::min<int>(static_cast<int>(text.size()), context_len);
    const int32_t token = next(text.data() + text.size() - n, n);
    if (token == control.stop_token) break;
    text.push_back(token);
    out.push_back(token);
    if (control.on_token) control.on_token(0, token);
  }
  return out;
}

template <typename T>
std::vector<int32_t> generate(GPTModel<T>& model, const std::vector<int32_t>& prompt,
                              int max_new_tokens, const SampleOptions& opts, Rng& rng,
                              const GenerateControl& control) {
  const int V = model.config().vocab_size;
  std::vector<T> last(V);
  ModelRunner<T> runner(model);
  return generate_tokens(prompt, max_new_tokens, model.config().context_len,
                         [&](const int32_t* window, int n) {
                           runner.forward(window, nullptr, 1, n, /*train=*/false);
                           runner.logits_row(n - 1, last.data());
                           return sample_token(last.data(), V, opts, rng);
                         },
                         control);
}

template int32_t sample_token<float>(const float*, int, const SampleOptions&, Rng&);
template int32_t sample_token<double>(const double*, int, const SampleOptions&, Rng&);
template std::vector<int32_t> generate<float>(GPTModel<float>&, const std::vector<int32_t>&, int,
                                              const SampleOptions&, Rng&, const GenerateControl&);
template std::vector<int32_t> generate<double>(GPTModel<double>&, const std::vector<int32_t>&,
                                               int, const SampleOptions&, Rng&,
                                               const GenerateControl&);

}  // namespace loom
