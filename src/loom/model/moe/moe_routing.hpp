#pragma once
// The router of an MoE layer after its logits (x @ router, [N, E]): probabilities, the top-k
// experts of each token, their gates, the capacity drops and the auxiliary losses, and the
// backward of all of it to the logits. Exactly issue 19's definitions:
//   probs[n]   = softmax(logits[n])
//   expert[n]  = the k largest probs, largest first; ties go to the lower expert index
//   gates[n]   = those probs / their sum when k > 1; the raw prob when k = 1
//   capacity   = MoeConfig::capacity; assignments beyond it are dropped in token order (token 0
//                first), the token keeping its other experts (gates are not renormalised)
//   aux        = a * E * sum_i f_i P_i   f_i: share of the N*k assignments choosing expert i
//                                       (before drops); P_i: mean over tokens of probs[., i]
//   z          = z_coef * mean_n logsumexp(logits[n])^2
// f_i is a count (no gradient); the gradient reaches the logits through P_i, the gates and z.
#include <cstdint>
#include <vector>

#include "loom/model/moe/moe_config.hpp"

namespace loom::moe {

struct MoeRouting {
  int tokens = 0, experts = 0, top_k = 0;
  int64_t capacity = 0;
  std::vector<int32_t> expert;  // [N, k] chosen experts, most probable first
  // [N, k] row of each assignment in the dispatch order (expert-major: expert 0's kept
  // assignments in token order, then expert 1's, ..); -1 when dropped.
  std::vector<int32_t> row;
  std::vector<int32_t> chosen;  // [E] assignments choosing each expert, before drops
  std::vector<int32_t> kept;    // [E] assignments each expert takes (<= capacity)
  std::vector<int64_t> first;   // [E+1] expert e's rows are first[e] .. first[e+1] - 1

  int64_t rows() const { return first.empty() ? 0 : first.back(); }  // kept assignments
};

// probs[N,E], lse[N] (logsumexp of each row), gates[N,k] and `r` from logits[N,E]. Softmax in T
// (the model runs it in f32). r's vectors are resized (no allocation once they have the size).
template <typename T>
void route(const T* logits, int N, const MoeConfig& cfg, bool dropless, T* probs, T* lse, T* gates,
           MoeRouting& r);

// The two auxiliary losses of the routed tokens (already times their coefficients).
struct AuxLosses {
  double load_balance = 0;
  double z = 0;
};
template <typename T>
AuxLosses aux_losses(const T* probs, const T* lse, const MoeRouting& r, const MoeConfig& cfg);

// dlogits[N,E] (overwritten) from dgates[N,k] (d loss / d gates) and `dloss`, the weight of the
// two auxiliary losses in the loss (1 when they are added as they are).
template <typename T>
void route_backward(T* dlogits, const T* dgates, const T* probs, const T* lse, const T* gates,
                    const MoeRouting& r, const MoeConfig& cfg, T dloss);

}  // namespace loom::moe
