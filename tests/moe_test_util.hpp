#pragma once
// Weights of one MoE layer owned by a test (router and E experts, random), viewed as the layer's
// MoeTensors for all experts or for a range of them (an ep rank's).
#include <vector>

#include "gradcheck.hpp"
#include "loom/model/moe/moe_layer.hpp"

namespace loom::test {

template <typename T>
struct OwnedExpert {
  std::vector<T> fc_w, fc_b, proj_w, proj_b;
};

template <typename T>
struct OwnedMoeWeights {
  std::vector<T> router;
  std::vector<OwnedExpert<T>> experts;

  // Random (seeded) when `scale` > 0, zeros (for gradients) otherwise.
  OwnedMoeWeights(int C, int E, uint64_t seed, double scale) {
    auto make = [&](size_t n, uint64_t s) {
      std::vector<T> v(n, T(0));
      if (scale > 0) {
        const auto r = random_vector(n, s, scale);
        for (size_t i = 0; i < n; ++i) v[i] = static_cast<T>(r[i]);
      }
      return v;
    };
    const size_t Cu = static_cast<size_t>(C);
    router = make(Cu * E, seed);
    for (int e = 0; e < E; ++e) {
      const uint64_t s = seed + 10 * (e + 1);
      experts.push_back({make(Cu * 4 * Cu, s + 1), make(4 * Cu, s + 2), make(4 * Cu * Cu, s + 3),
                         make(Cu, s + 4)});
    }
  }

  // Experts first .. first + count - 1 (all by default): as parameters, or as gradients.
  moe::MoeTensors<const T> view(int first = 0, int count = -1) const {
    return tensors<const T>(*this, first, count);
  }
  moe::MoeTensors<T> grads(int first = 0, int count = -1) { return tensors<T>(*this, first, count); }

 private:
  template <typename U, typename Self>
  static moe::MoeTensors<U> tensors(Self& self, int first, int count) {
    moe::MoeTensors<U> t;
    t.router = self.router.data();
    if (count < 0) count = static_cast<int>(self.experts.size());
    for (int e = first; e < first + count; ++e) {
      auto& x = self.experts[e];
      t.experts.push_back({x.fc_w.data(), x.fc_b.data(), x.proj_w.data(), x.proj_b.data()});
    }
    return t;
  }
};

}  // namespace loom::test
