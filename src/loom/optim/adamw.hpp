#pragma once
// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, applied only to parameters whose
// ParamInfo::weight_decay is set (matrices and embeddings; not biases or LayerNorm gains).
//
// The optimizer owns the moments of one contiguous range [begin, end) of the flat parameter
// buffer (the whole buffer on a single rank; one shard of it under ZeRO), so sharding is only
// offset arithmetic. Per element, at step t = step_count() + 1, with g = grad_scale * grad:
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   p -= lr * ( (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd * p )
// with wd = weight_decay where decayed, else 0 (the decay uses p before this step's update).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "loom/model/param_layout.hpp"

namespace loom {

struct AdamWParams {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

class AdamW {
 public:
  // Owns moments for [begin, end) of the flat buffer described by `layout`; end = SIZE_MAX means
  // the end of the buffer.
  AdamW(const std::vector<ParamInfo>& layout, const AdamWParams& hp, size_t begin = 0,
        size_t end = SIZE_MAX);

  // Updates params[begin, end) from grad_scale * grads[begin, end) (pointers to the whole flat
  // buffers) and advances the step counter. grad_scale carries gradient clipping into this one
  // pass over memory instead of a separate scaling pass.
  void step(float* params, const float* grads, float lr, float grad_scale = 1.0f);

  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  int64_t step_count() const { return t_; }
  // Moments of [begin, end): element i belongs to flat index begin + i.
  float* m() { return m_.data(); }
  float* v() { return v_.data(); }
  const float* m() const { return m_.data(); }
  const float* v() const { return v_.data(); }
  // For restoring a checkpoint (the moments are restored through m() and v()).
  void set_step_count(int64_t t);

 private:
  struct Segment {
    size_t begin, end;  // flat indices, inside [begin_, end_)
    bool decay;
  };
  AdamWParams hp_;
  size_t begin_, end_;
  std::vector<Segment> segments_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

}  // namespace loom
