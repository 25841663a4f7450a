#pragma once
// One weight matrix of the cached decoder, f32 (a view of the model's parameters, no copy) or
// int8 (a quantised copy): out[N, out] = inp[N, in] @ W + bias.
// Decoding runs few rows at a time (one per sequence), where sgemm would repack the whole weight
// for every call; those rows go through sgemv, which streams the weight once per row.
#include <cstdint>

#include "loom/infer/int8_matrix.hpp"

namespace loom::infer {

enum class WeightType { F32, Int8 };

// "f32" | "none" -> F32, "int8" -> Int8; anything else is an error naming `flag`.
WeightType parse_weight_type(const std::string& text, const std::string& flag);
const char* name(WeightType t);

class DecoderLinear {
 public:
  DecoderLinear() = default;
  // A Hugging Face Conv1D weight w[in, out] with bias[out] (bias may be nullptr).
  static DecoderLinear conv1d(const float* w, const float* bias, int in, int out, WeightType t);
  // The tied LM head: logits = x @ wte^T with wte[V, C] (no bias).
  static DecoderLinear lm_head(const float* wte, int V, int C, WeightType t);

  void forward(float* out, const float* inp, int N) const;
  int in() const { return in_; }
  int out() const { return out_; }
  // The row-major [out, in] int8 weight, when quantised (the tied embedding reads its rows).
  const Int8Matrix* int8() const { return type_ == WeightType::Int8 ? &q_ : nullptr; }

 private:
  WeightType type_ = WeightType::F32;
  bool transposed_ = false;  // f32 weight stored [out, in] (LM head) rather than [in, out]
  const float* w_ = nullptr;
  const float* bias_ = nullptr;
  int in_ = 0, out_ = 0;
  Int8Matrix q_;
};

}  // namespace loom::infer
