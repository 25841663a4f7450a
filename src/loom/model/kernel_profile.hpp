#pragma once
// Per-kernel wall time of forward and backward, for `loom bench train`, and per-kernel events in
// the timeline trace (`--trace`). The model reads the clock only when a profile is attached
// (ChunkExecutor::set_profile) or tracing is on, so training pays two branches per kernel call.
#include <array>
#include <chrono>
#include <cstddef>

#include "loom/core/trace.hpp"

namespace loom {

enum class Kernel : int {
  kEmbedding,
  kLayerNorm,
  kMatmulQKV,
  kAttention,
  kMatmulAttnProj,
  kResidual,
  kMatmulFC,
  kGelu,
  kMatmulMLPProj,
  kDropout,
  kLMHead,
  kSoftmaxCE,
  kCount
};

const char* kernel_name(Kernel k);

struct KernelProfile {
  static constexpr size_t kNum = static_cast<size_t>(Kernel::kCount);
  std::array<double, kNum> forward_s{};
  std::array<double, kNum> backward_s{};
  void clear() { forward_s.fill(0); backward_s.fill(0); }
};

// Adds the scope's duration to profile->forward_s/backward_s[kernel] (unless profile is null) and
// records it as a trace event (category "kernel fwd" / "kernel bwd") when tracing is on.
class ProfileScope {
 public:
  ProfileScope(KernelProfile* profile, Kernel k, bool backward)
      : slot_(profile == nullptr ? nullptr
                                 : &(backward ? profile->backward_s
                                              : profile->forward_s)[static_cast<size_t>(k)]),
        kernel_(k),
        backward_(backward),
        trace_start_us_(trace::enabled() ? trace::now_us() : -1) {
    if (slot_ != nullptr) start_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope() {
    if (slot_ != nullptr) {
      *slot_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    if (trace_start_us_ >= 0)
      trace::complete(kernel_name(kernel_), backward_ ? "kernel bwd" : "kernel fwd", trace_start_us_);
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  double* slot_;
  Kernel kernel_;
  bool backward_;
  double trace_start_us_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace loom
