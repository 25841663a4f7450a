#include "loom/infer/decoder_linear.hpp"

#include <cblas.h>

#include <algorithm>
#include <string>

#include "loom/core/check.hpp"
#include "loom/kernels/cpu/linear.hpp"
#include "loom/kernels/cpu/lm_head.hpp"

namespace loom::infer {

namespace {
// Up to this many rows, one sgemv per row beats sgemm's packing of the weight.
constexpr int kGemvRows = 2;
}  // namespace

WeightType parse_weight_type(const std::string& text, const std::string& flag) {
  if (text == "f32" || text == "none") return WeightType::F32;
  if (text == "int8") return WeightType::Int8;
  LOOM_FAIL(flag, ": expected none (f32 weights) or int8, got '", text, "'");
}

const char* name(WeightType t) { return t == WeightType::Int8 ? "int8" : "f32"; }

DecoderLinear DecoderLinear::conv1d(const float* w, const float* bias, int in, int out,
                                    WeightType t) {
  DecoderLinear l;
  l.type_ = t;
  l.w_ = w;
  l.bias_ = bias;
  l.in_ = in;
  l.out_ = out;
  if (t == WeightType::Int8) l.q_ = quantize_conv1d(w, in, out);
  return l;
}

DecoderLinear DecoderLinear::lm_head(const float* wte, int V, int C, WeightType t) {
  DecoderLinear l;
  l.type_ = t;
  l.transposed_ = true;
  l.w_ = wte;
  l.in_ = C;
  l.out_ = V;
  if (t == WeightType::Int8) l.q_ = quantize_rows(wte, V, C);
  return l;
}

void DecoderLinear::forward(float* out, const float* inp, int N) const {
  if (type_ == WeightType::Int8) {
    int8_linear_forward(out, inp, q_, bias_, N);
    return;
  }
  if (N > kGemvRows) {
    if (transposed_)
      kernels::lm_head_forward(out, inp, w_, N, in_, out_);
    else
      kernels::linear_forward(out, inp, w_, bias_, N, in_, out_);
    return;
  }
  for (int n = 0; n < N; ++n) {
    float* y = out + static_cast<size_t>(n) * out_;
    const float* x = inp + static_cast<size_t>(n) * in_;
    if (bias_ != nullptr) std::copy(bias_, bias_ + out_, y);
    const float beta = bias_ != nullptr ? 1.0f : 0.0f;
    if (transposed_)  // y[V] = wte[V, C] @ x[C]
      cblas_sgemv(CblasRowMajor, CblasNoTrans, out_, in_, 1.0f, w_, in_, x, 1, beta, y, 1);
    else  // y[out] = w[in, out]^T @ x[in]
      cblas_sgemv(CblasRowMajor, CblasTrans, in_, out_, 1.0f, w_, out_, x, 1, beta, y, 1);
  }
}

}  // namespace loom::infer
