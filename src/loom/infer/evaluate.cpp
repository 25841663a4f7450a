#include "loom/infer/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "loom/core/aligned_buffer.hpp"
#include "loom/core/check.hpp"
#include "loom/infer/kv_decoder.hpp"
#include "loom/kernels/cpu/softmax_ce.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/parallel/replica_check.hpp"

namespace loom::infer {

EvalResult evaluate(GPT& model, const WindowDataset& data, int seq_len, const EvalOptions& opts,
                    comm::Communicator* comm) {
  const int T = seq_len, V = model.config().vocab_size;
  LOOM_CHECK(T > 0 && T <= model.config().context_len, "eval: seq_len ", T,
             " must be in [1, context_len = ", model.config().context_len, "]");
  LOOM_CHECK(opts.batch > 0, "eval: batch must be > 0, got ", opts.batch);
  LOOM_CHECK(data.size() > 0, "eval: the data holds fewer than ", T + 1, " tokens (one window)");
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  const size_t count = opts.max_windows == 0 ? data.size() : std::min(data.size(), opts.max_windows);
  std::vector<size_t> mine;
  for (size_t k = rank; k < count; k += world) mine.push_back(k * data.size() / count);

  const size_t B = opts.batch;
  std::vector<int32_t> inputs(B * T), targets(B * T);
  std::optional<ModelRunner<float>> runner;  // f32: the model's own forward
  std::optional<KVDecoder> decoder;
  AlignedBuffer<float> losses, lse;
  if (opts.weights != WeightType::F32) {
    decoder.emplace(model, opts.weights);
    losses.resize(B * T);
    lse.resize(B * T);
  } else {
    runner.emplace(model);
  }
  double sum = 0;  // of per-token losses
  for (size_t first = 0; first < mine.size(); first += B) {
    const int rows = static_cast<int>(std::min(B, mine.size() - first));
    for (int r = 0; r < rows; ++r)
      data.get(mine[first + r], inputs.data() + r * T, targets.data() + r * T);
    if (!decoder) {
      sum += static_cast<double>(runner->forward(inputs.data(), targets.data(), rows, T, false)) * rows * T;
      continue;
    }
    // Each window is one sequence of the decoder, prefilled at once with every row's logits.
    decoder->start(rows, T);
    std::vector<int> seqs(static_cast<size_t>(rows) * T);
    for (size_t i = 0; i < seqs.size(); ++i) seqs[i] = static_cast<int>(i / T);
    const std::vector<uint8_t> want(seqs.size(), 1);
    const float* logits =
        decoder->forward(seqs, std::span(inputs).first(seqs.size()), want);
    kernels::softmax_ce_forward(losses.data(), lse.data(), logits, targets.data(), rows * T, V);
    for (size_t i = 0; i < seqs.size(); ++i) sum += losses.data()[i];
  }
  EvalResult r;
  r.windows = static_cast<int64_t>(count);
  r.tokens = r.windows * T;
  const double total = comm ? parallel::allreduce_sum(*comm, sum) : sum;
  r.loss = total / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.loss);
  return r;
}

}  // namespace loom::infer
