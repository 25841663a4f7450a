#include "loom/model/moe/moe_routing.hpp"

#include <algorithm>
#include <cmath>

#include "loom/core/check.hpp"

namespace loom::moe {

template <typename T>
void route(const T* logits, int N, const MoeConfig& cfg, bool dropless, T* probs, T* lse, T* gates,
           MoeRouting& r) {
  const int E = cfg.experts, k = cfg.top_k;
  LOOM_CHECK(k >= 1 && k <= E, "moe: top_k ", k, " for ", E, " experts");
  r.tokens = N;
  r.experts = E;
  r.top_k = k;
  r.capacity = cfg.capacity(N, dropless);
  r.expert.resize(static_cast<size_t>(N) * k);
  r.row.resize(static_cast<size_t>(N) * k);
  r.chosen.assign(E, 0);
  r.kept.assign(E, 0);
  for (int n = 0; n < N; ++n) {
    const T* l = logits + static_cast<size_t>(n) * E;
    T* p = probs + static_cast<size_t>(n) * E;
    const T mx = *std::max_element(l, l + E);
    T sum = 0;
    for (int e = 0; e < E; ++e) sum += (p[e] = std::exp(l[e] - mx));
    for (int e = 0; e < E; ++e) p[e] /= sum;
    lse[n] = mx + std::log(sum);
    // Top-k by repeated arg-max; the strict > keeps the lower index on ties.
    int32_t* sel = &r.expert[static_cast<size_t>(n) * k];
    T* g = gates + static_cast<size_t>(n) * k;
    T picked = 0;
    for (int j = 0; j < k; ++j) {
      int best = -1;
      for (int e = 0; e < E; ++e) {
        if (std::find(sel, sel + j, e) != sel + j) continue;
        if (best < 0 || p[e] > p[best]) best = e;
      }
      sel[j] = best;
      g[j] = p[best];
      picked += p[best];
      ++r.chosen[best];
    }
    if (k > 1)
      for (int j = 0; j < k; ++j) g[j] /= picked;
  }
  // Capacity in token order: slot = how many earlier tokens the expert took.
  std::vector<int32_t>& slot = r.row;
  for (size_t a = 0; a < slot.size(); ++a) {
    int32_t& taken = r.kept[r.expert[a]];
    slot[a] = taken < r.capacity ? taken++ : -1;
  }
  // Slots to rows of the expert-major dispatch order.
  r.first.assign(E + 1, 0);
  for (int e = 0; e < E; ++e) r.first[e + 1] = r.first[e] + r.kept[e];
  for (size_t a = 0; a < slot.size(); ++a)
    if (slot[a] >= 0) slot[a] = static_cast<int32_t>(r.first[r.expert[a]] + slot[a]);
}

template <typename T>
AuxLosses aux_losses(const T* probs, const T* lse, const MoeRouting& r, const MoeConfig& cfg) {
  const int N = r.tokens, E = r.experts;
  AuxLosses out;
  if (N == 0) return out;
  double balance = 0, z = 0;
  for (int e = 0; e < E; ++e) {
    double P = 0;
    for (int n = 0; n < N; ++n) P += probs[static_cast<size_t>(n) * E + e];
    const double f = static_cast<double>(r.chosen[e]) / (static_cast<double>(N) * r.top_k);
    balance += f * (P / N);
  }
  for (int n = 0; n < N; ++n) z += static_cast<double>(lse[n]) * lse[n];
  out.load_balance = cfg.aux_loss_coef * E * balance;
  out.z = cfg.z_loss_coef * z / N;
  return out;
}

template <typename T>
void route_backward(T* dlogits, const T* dgates, const T* probs, const T* lse, const T* gates,
                    const MoeRouting& r, const MoeConfig& cfg, T dloss) {
  const int N = r.tokens, E = r.experts, k = r.top_k;
  if (N == 0) return;
  for (int n = 0; n < N; ++n) {
    const T* p = probs + static_cast<size_t>(n) * E;
    const T* g = gates + static_cast<size_t>(n) * k;
    const T* dg = dgates + static_cast<size_t>(n) * k;
    const int32_t* sel = &r.expert[static_cast<size_t>(n) * k];
    T* d = dlogits + static_cast<size_t>(n) * E;  // d loss / d probs first
    // Load balancing: d/dP_i of a E sum f_i P_i, and P_i = mean_n probs[n, i].
    for (int e = 0; e < E; ++e)
      d[e] = dloss * static_cast<T>(cfg.aux_loss_coef) * E *
             (static_cast<T>(r.chosen[e]) / (static_cast<T>(N) * k)) / N;
    // Gates g_j = p_j / S (S = sum of the k chosen probs): dp_j = (dg_j - sum_i dg_i g_i) / S.
    if (k == 1) {
      d[sel[0]] += dg[0];
    } else {
      T S = 0, dot = 0;
      for (int j = 0; j < k; ++j) {
        S += p[sel[j]];
        dot += dg[j] * g[j];
      }
      for (int j = 0; j < k; ++j) d[sel[j]] += (dg[j] - dot) / S;
    }
    // Softmax: dlogit_i = p_i (dp_i - sum_j p_j dp_j); z-loss: d/dlogit_i of z lse^2 / N.
    T pd = 0;
    for (int e = 0; e < E; ++e) pd += p[e] * d[e];
    const T dz = dloss * static_cast<T>(cfg.z_loss_coef) * 2 * lse[n] / N;
    for (int e = 0; e < E; ++e) d[e] = p[e] * (d[e] - pd) + dz * p[e];
  }
}

template void route<float>(const float*, int, const MoeConfig&, bool, float*, float*, float*,
                           MoeRouting&);
template void route<double>(const double*, int, const MoeConfig&, bool, double*, double*, double*,
                            MoeRouting&);
template AuxLosses aux_losses<float>(const float*, const float*, const MoeRouting&, const MoeConfig&);
template AuxLosses aux_losses<double>(const double*, const double*, const MoeRouting&,
                                      const MoeConfig&);
template void route_backward<float>(float*, const float*, const float*, const float*, const float*,
                                    const MoeRouting&, const MoeConfig&, float);
template void route_backward<double>(double*, const double*, const double*, const double*,
                                     const double*, const MoeRouting&, const MoeConfig&, double);

}  // namespace loom::moe
