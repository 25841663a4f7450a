#include "loom/parallel/pipeline/mlp_chunk.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"
#include "loom/core/rng.hpp"
#include "loom/kernels/cpu/matmul.hpp"

namespace loom::pipeline {
namespace {

// Inputs and targets of micro-batch mb: (n, d), uniform in [-1, 1).
void fill(std::vector<float>& v, size_t n, uint64_t seed) {
  Rng rng(seed);
  v.resize(n);
  for (auto& x : v) x = 2 * rng.uniform() - 1;
}

}  // namespace

MlpChunk::MlpChunk(const MlpSpec& spec, int first, int last)
    : spec_(spec), first_(first), last_(last) {
  LOOM_CHECK(spec.width > 0 && spec.rows > 0 && spec.micro_batches > 0 && 0 <= first &&
                 first < last && last <= spec.layers,
             "mlp chunk: bad layers [", first, ", ", last, ") of ", spec.layers);
  const size_t d = spec.width, per = layer_params();
  params_.resize(per * (last - first));
  grads_.assign(params_.size(), 0.0f);
  for (int l = first; l < last; ++l) {
    Rng rng(spec.seed * 1000003 + static_cast<uint64_t>(l));
    float* p = params_.data() + per * (l - first);
    const float scale = 1.5f / std::sqrt(static_cast<float>(d));
    for (size_t i = 0; i < d * d; ++i) p[i] = scale * static_cast<float>(rng.normal());
    for (size_t i = 0; i < d; ++i) p[d * d + i] = 0.1f * static_cast<float>(rng.normal());
  }
}

size_t MlpChunk::layer_params() const {
  const size_t d = spec_.width;
  return d * d + d;
}
size_t MlpChunk::input_size() const { return first_ == 0 ? 0 : nd(); }
size_t MlpChunk::output_size() const { return last_ == spec_.layers ? 0 : nd(); }

void MlpChunk::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  loss_ = 0;
}

size_t MlpChunk::activation_bytes() const {
  size_t b = 0;
  for (const auto& [mb, s] : saved_) b += (s.x.size() + s.dz.size()) * sizeof(float);
  return b;
}

void MlpChunk::note_memory() { peak_bytes_ = std::max(peak_bytes_, activation_bytes()); }

void MlpChunk::forward(int mb, const float* input, float* output) {
  const int n = spec_.rows, d = spec_.width, L = last_ - first_;
  LOOM_CHECK(saved_.count(mb) == 0, "mlp chunk: forward of micro-batch ", mb, " twice");
  Saved& s = saved_[mb];
  s.x.resize(static_cast<size_t>(L + 1) * nd());
  if (first_ == 0) {
    std::vector<float> x0;
    fill(x0, nd(), spec_.seed * 7919 + static_cast<uint64_t>(mb));
    std::copy(x0.begin(), x0.end(), s.x.begin());
  } else {
    std::copy(input, input + nd(), s.x.begin());
  }
  for (int l = 0; l < L; ++l) {
    const float* W = params_.data() + layer_params() * l;  // (d, d)
    const float* b = W + static_cast<size_t>(d) * d;        // (d)
    const float* x = s.x.data() + nd() * l;                 // (n, d)
    float* h = s.x.data() + nd() * (l + 1);                 // (n, d)
    for (int r = 0; r < n; ++r) std::copy(b, b + d, h + static_cast<size_t>(r) * d);
    kernels::matmul<float>(false, false, n, d, d, 1.0f, x, d, W, d, 1.0f, h, d);
    for (size_t i = 0; i < nd(); ++i) h[i] = std::tanh(h[i]);
  }
  const float* y = s.x.data() + nd() * L;
  if (last_ == spec_.layers) {
    // loss share of this micro-batch: 0.5 * mean((y - t)^2) / micro_batches
    std::vector<float> t;
    fill(t, nd(), spec_.seed * 104729 + static_cast<uint64_t>(mb));
    double sq = 0;
    for (size_t i = 0; i < nd(); ++i) sq += static_cast<double>(y[i] - t[i]) * (y[i] - t[i]);
    loss_ += 0.5 * sq / static_cast<double>(nd()) / spec_.micro_batches;
  } else {
    std::copy(y, y + nd(), output);
  }
  note_memory();
}

void MlpChunk::backward_input(int mb, const float* grad_output, float* grad_input) {
  const int n = spec_.rows, d = spec_.width, L = last_ - first_;
  const auto it = saved_.find(mb);
  LOOM_CHECK(it != saved_.end() && it->second.dz.empty(), "mlp chunk: backward of micro-batch ",
             mb, " without its forward");
  Saved& s = it->second;
  s.dz.resize(static_cast<size_t>(L) * nd());
  std::vector<float> dh(nd());  // gradient of the current layer's output
  if (last_ == spec_.layers) {
    std::vector<float> t;
    fill(t, nd(), spec_.seed * 104729 + static_cast<uint64_t>(mb));
    const float* y = s.x.data() + nd() * L;
    const float scale = 1.0f / (static_cast<float>(nd()) * spec_.micro_batches);
    for (size_t i = 0; i < nd(); ++i) dh[i] = (y[i] - t[i]) * scale;
  } else {
    std::copy(grad_output, grad_output + nd(), dh.begin());
  }
  for (int l = L - 1; l >= 0; --l) {
    const float* W = params_.data() + layer_params() * l;
    const float* h = s.x.data() + nd() * (l + 1);
    float* dz = s.dz.data() + nd() * l;
    for (size_t i = 0; i < nd(); ++i) dz[i] = dh[i] * (1 - h[i] * h[i]);  // tanh'
    if (l == 0 && first_ == 0) break;  // the model's input needs no gradient
    float* dx = l == 0 ? grad_input : dh.data();
    // dx (n, d) = dz (n, d) @ W^T
    kernels::matmul<float>(false, true, n, d, d, 1.0f, dz, d, W, d, 0.0f, dx, d);
  }
  note_memory();
}

void MlpChunk::backward_weights(int mb) {
  const int n = spec_.rows, d = spec_.width, L = last_ - first_;
  const auto it = saved_.find(mb);
  LOOM_CHECK(it != saved_.end() && !it->second.dz.empty(), "mlp chunk: W of micro-batch ", mb,
             " before its B");
  const Saved& s = it->second;
  for (int l = 0; l < L; ++l) {
    float* dW = grads_.data() + layer_params() * l;
    float* db = dW + static_cast<size_t>(d) * d;
    const float* x = s.x.data() + nd() * l;
    const float* dz = s.dz.data() + nd() * l;
    // dW (d, d) += x^T (d, n) @ dz (n, d); db (d) += column sums of dz
    kernels::matmul<float>(true, false, d, d, n, 1.0f, x, d, dz, d, 1.0f, dW, d);
    for (int r = 0; r < n; ++r)
      for (int j = 0; j < d; ++j) db[j] += dz[static_cast<size_t>(r) * d + j];
  }
  saved_.erase(it);
}

int first_layer_of(const MlpSpec& spec, const Schedule& schedule, int stage, int chunk) {
  const int S = schedule.stages() * schedule.virtual_stages();
  return schedule.virtual_stage(stage, chunk) * spec.layers / S;
}

std::vector<std::unique_ptr<MlpChunk>> make_mlp_chunks(const MlpSpec& spec,
                                                       const Schedule& schedule, int stage) {
  const int S = schedule.stages() * schedule.virtual_stages();
  LOOM_CHECK(S <= spec.layers, "mlp chunks: ", S, " stages for ", spec.layers, " layers");
  std::vector<std::unique_ptr<MlpChunk>> out;
  for (int c = 0; c < schedule.virtual_stages(); ++c) {
    const int g = schedule.virtual_stage(stage, c);
    out.push_back(std::make_unique<MlpChunk>(spec, first_layer_of(spec, schedule, stage, c),
                                             (g + 1) * spec.layers / S));
  }
  return out;
}

}  // namespace loom::pipeline
