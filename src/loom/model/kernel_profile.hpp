#pragma once
// Per-kernel wall time of forward and backward, for `loom bench train`. The model only reads the
// clock when a profile is attached (GPTModel::set_profile), so training pays one branch per
// kernel call.
#include <array>
#include <chrono>
#include <cstddef>

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

// Adds the scope's duration to profile->forward_s/backward_s[kernel]; no-op if profile is null.
class ProfileScope {
 public:
  ProfileScope(KernelProfile* profile, Kernel k, bool backward)
      : slot_(profile == nullptr ? nullptr
                                 : &(backward ? profile->backward_s
                                              : profile->forward_s)[static_cast<size_t>(k)]) {
    if (slot_ != nullptr) start_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope() {
    if (slot_ != nullptr) {
      *slot_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  double* slot_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace loom
