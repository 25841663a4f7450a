#include "loom/model/moe/moe_layer.hpp"

#include <algorithm>
#include <cstring>

#include "loom/core/check.hpp"
#include "loom/kernels/cpu/gelu.hpp"
#include "loom/kernels/cpu/linear.hpp"

namespace loom::moe {

namespace {

// Grows v to at least n elements (never shrinks, so a buffer sized once is not reallocated).
template <typename V>
void fit(V& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

}  // namespace

template <typename T>
size_t MoeBuffers<T>::bytes() const {
  auto of = [](const auto& v) { return v.size() * sizeof(v[0]); };
  return of(logits) + of(probs) + of(lse) + of(gates) + of(routing.expert) + of(routing.row) +
         of(routing.chosen) + of(routing.kept) + of(routing.first) + of(dispatched) +
         of(returned) + of(expert_in) + of(expert_pre) + of(expert_act) + of(expert_out) +
         of(received) + of(local_first) + of(to_expert_major) + of(send_counts) +
         of(recv_counts) + of(staging) + of(dgates) + of(dlogits) + of(d_returned) +
         of(d_dispatched) + of(d_expert_out) + of(d_expert_in) + of(d_expert_act);
}

size_t moe_buffer_bytes(const MoeConfig& cfg, int d_model, size_t N, size_t elem_bytes) {
  const size_t E = static_cast<size_t>(cfg.experts), A = N * static_cast<size_t>(cfg.top_k);
  const size_t C = static_cast<size_t>(d_model);
  // logits, probs, dlogits [N,E]; lse [N]; gates, dgates [A]; dispatched, expert_out,
  // d_returned, d_dispatched [A,C]; expert_pre, expert_act, d_expert_act [A,4C].
  const size_t elems = 3 * N * E + N + 2 * A + 4 * A * C + 3 * A * 4 * C;
  // Routing: expert and row [A], chosen and kept [E] (int32); first and local_first [E+1] (int64).
  const size_t ints = (2 * A + 2 * E) * sizeof(int32_t) + 2 * (E + 1) * sizeof(int64_t);
  return elems * elem_bytes + ints;
}

template <typename T>
MoeLayer<T>::MoeLayer(const MoeConfig& cfg, int d_model, ExpertParallelGroup* ep)
    : cfg_(cfg), C_(d_model), ep_(ep != nullptr && ep->size() > 1 ? ep : nullptr) {
  const int P = ep_ ? ep_->size() : 1;
  LOOM_CHECK(cfg.experts >= 1 && cfg.top_k >= 1 && cfg.top_k <= cfg.experts,
             "moe layer: top_k ", cfg.top_k, " of ", cfg.experts, " experts");
  LOOM_CHECK(cfg.experts % P == 0, "moe layer: ", cfg.experts, " experts cannot be split over ", P,
             " expert-parallel ranks (ep must divide moe_experts)");
  local_experts_ = cfg.experts / P;
  first_expert_ = ep_ ? ep_->rank() * local_experts_ : 0;
}

template <typename T>
MoeStats MoeLayer<T>::forward(T* y, const T* x, int N, const MoeTensors<const T>& w,
                              MoeBuffers<T>& b, bool dropless) const {
  const int E = cfg_.experts, k = cfg_.top_k, C = C_, El = local_experts_;
  const int P = ep_ ? ep_->size() : 1;
  LOOM_CHECK(static_cast<int>(w.experts.size()) == El, "moe layer: ", w.experts.size(),
             " expert tensors for ", El, " local experts");
  const size_t Nu = static_cast<size_t>(N), Cu = static_cast<size_t>(C);
  // Worst case: every assignment kept (A = N k); every rank's assignments on this rank's experts.
  const size_t A_max = Nu * k;
  const size_t R_max = ep_ ? static_cast<size_t>(P) *
                                 std::min<size_t>(A_max, static_cast<size_t>(El) *
                                                             cfg_.capacity(N, dropless))
                           : A_max;
  fit(b.logits, Nu * E);
  fit(b.probs, Nu * E);
  fit(b.lse, Nu);
  fit(b.gates, A_max);
  fit(b.dispatched, A_max * Cu);
  fit(b.expert_pre, R_max * 4 * Cu);
  fit(b.expert_act, R_max * 4 * Cu);
  fit(b.expert_out, R_max * Cu);
  if (ep_) {
    fit(b.returned, A_max * Cu);
    fit(b.expert_in, R_max * Cu);
    fit(b.staging, std::max(A_max, R_max) * Cu);
  }

  // Router: logits[N,E] = x[N,C] @ router[C,E]; probabilities, top-k, gates, capacity.
  kernels::linear_forward(b.logits.data(), x, w.router, static_cast<const T*>(nullptr), N, C, E);
  MoeRouting& r = b.routing;
  route(b.logits.data(), N, cfg_, dropless, b.probs.data(), b.lse.data(), b.gates.data(), r);
  const int64_t A = r.rows();

  // dispatched[row(n,j)] = x[n] for every kept assignment.
  for (size_t a = 0; a < Nu * k; ++a)
    if (r.row[a] >= 0)
      std::memcpy(&b.dispatched[static_cast<size_t>(r.row[a]) * Cu], x + (a / k) * Cu,
                  Cu * sizeof(T));

  const T* expert_in = b.dispatched.data();
  const T* returned = b.expert_out.data();
  if (ep_) {
    // How many rows each rank sends each of this rank's experts: the senders' kept counts.
    fit(b.received, static_cast<size_t>(P) * El);
    ep_->all_to_all(r.kept.data(), b.received.data(), static_cast<size_t>(El));
    plan_exchange(b);
    to_experts(b.dispatched.data(), b.expert_in.data(), b);
    expert_in = b.expert_in.data();
    returned = b.returned.data();
  } else {
    b.local_first = r.first;
  }
  expert_forward(expert_in, b.expert_out.data(), w, b);
  if (ep_) from_experts(b.expert_out.data(), b.returned.data(), b);

  // y[n] = sum_j gates[n,j] * returned[row(n,j)].
  std::fill(y, y + Nu * Cu, T(0));
  for (size_t a = 0; a < Nu * k; ++a) {
    if (r.row[a] < 0) continue;
    const T g = b.gates[a];
    const T* src = returned + static_cast<size_t>(r.row[a]) * Cu;
    T* dst = y + (a / k) * Cu;
    for (size_t c = 0; c < Cu; ++c) dst[c] += g * src[c];
  }

  MoeStats s;
  const AuxLosses aux = aux_losses(b.probs.data(), b.lse.data(), r, cfg_);
  s.load_balance_loss = aux.load_balance;
  s.z_loss = aux.z;
  if (N > 0) {
    s.dropped_share = 1.0 - static_cast<double>(A) / (static_cast<double>(N) * k);
    const int32_t busiest = *std::max_element(r.kept.begin(), r.kept.end());
    s.max_over_mean_load = A > 0 ? busiest / (static_cast<double>(A) / E) : 0.0;
  }
  return s;
}

template <typename T>
void MoeLayer<T>::backward(T* dx, const T* dy, const T* x, const MoeTensors<const T>& w,
                           const MoeTensors<T>& g, MoeBuffers<T>& b, T dloss) const {
  const MoeRouting& r = b.routing;
  const int N = r.tokens, E = cfg_.experts, k = cfg_.top_k, C = C_;
  const size_t Nu = static_cast<size_t>(N), Cu = static_cast<size_t>(C);
  fit(b.dgates, Nu * k);
  fit(b.dlogits, Nu * E);
  fit(b.d_returned, Nu * k * Cu);
  fit(b.d_dispatched, Nu * k * Cu);
  fit(b.d_expert_act, b.expert_act.size());
  if (ep_) {
    fit(b.d_expert_out, b.expert_out.size());
    fit(b.d_expert_in, b.expert_out.size());
  }
  const T* returned = ep_ ? b.returned.data() : b.expert_out.data();

  // Combine: d returned[row] = gate * dy[n]; d gate = dy[n] . returned[row] (0 if dropped).
  for (size_t a = 0; a < Nu * k; ++a) {
    const T* d = dy + (a / k) * Cu;
    if (r.row[a] < 0) {
      b.dgates[a] = 0;
      continue;
    }
    const size_t row = static_cast<size_t>(r.row[a]);
    const T* ret = returned + row * Cu;
    T* dret = &b.d_returned[row * Cu];
    T dot = 0;
    for (size_t c = 0; c < Cu; ++c) {
      dret[c] = b.gates[a] * d[c];
      dot += d[c] * ret[c];
    }
    b.dgates[a] = dot;
  }

  // Experts (rows expert-major), through the all-to-alls when split.
  if (ep_) {
    to_experts(b.d_returned.data(), b.d_expert_out.data(), b);
    expert_backward(b.d_expert_out.data(), b.expert_in.data(), b.d_expert_in.data(), w, g, b);
    from_experts(b.d_expert_in.data(), b.d_dispatched.data(), b);
  } else {
    expert_backward(b.d_returned.data(), b.dispatched.data(), b.d_dispatched.data(), w, g, b);
  }

  // Router: dlogits, then dx = dlogits @ router^T (overwrites dx), router grad += x^T dlogits.
  route_backward(b.dlogits.data(), b.dgates.data(), b.probs.data(), b.lse.data(), b.gates.data(), r,
                 cfg_, dloss);
  kernels::linear_backward(dx, g.router, static_cast<T*>(nullptr), b.dlogits.data(), x, w.router,
                           N, C, E);
  // dx[n] += d dispatched[row(n,j)] for every kept assignment.
  for (size_t a = 0; a < Nu * k; ++a) {
    if (r.row[a] < 0) continue;
    const T* src = &b.d_dispatched[static_cast<size_t>(r.row[a]) * Cu];
    T* dst = dx + (a / k) * Cu;
    for (size_t c = 0; c < Cu; ++c) dst[c] += src[c];
  }
}

template <typename T>
void MoeLayer<T>::expert_forward(const T* in, T* out, const MoeTensors<const T>& w,
                                 MoeBuffers<T>& b) const {
  const int C = C_;
  const size_t Cu = static_cast<size_t>(C);
  for (int l = 0; l < local_experts_; ++l) {
    const int64_t first = b.local_first[l], m = b.local_first[l + 1] - first;
    if (m == 0) continue;
    const ExpertTensors<const T>& e = w.experts[l];
    const size_t f = static_cast<size_t>(first);
    T* pre = &b.expert_pre[f * 4 * Cu];
    T* act = &b.expert_act[f * 4 * Cu];
    kernels::linear_forward(pre, in + f * Cu, e.fc_w, e.fc_b, static_cast<int>(m), C, 4 * C);
    kernels::gelu_forward(act, pre, static_cast<size_t>(m) * 4 * Cu);
    kernels::linear_forward(out + f * Cu, act, e.proj_w, e.proj_b, static_cast<int>(m), 4 * C, C);
  }
}

template <typename T>
void MoeLayer<T>::expert_backward(const T* d_out, const T* in, T* d_in,
                                  const MoeTensors<const T>& w, const MoeTensors<T>& g,
                                  MoeBuffers<T>& b) const {
  const int C = C_;
  const size_t Cu = static_cast<size_t>(C);
  for (int l = 0; l < local_experts_; ++l) {
    const int64_t first = b.local_first[l], m = b.local_first[l + 1] - first;
    if (m == 0) continue;
    const ExpertTensors<const T>& e = w.experts[l];
    const ExpertTensors<T>& ge = g.experts[l];
    const size_t f = static_cast<size_t>(first);
    const int M = static_cast<int>(m);
    T* dact = &b.d_expert_act[f * 4 * Cu];
    kernels::linear_backward(dact, ge.proj_w, ge.proj_b, d_out + f * Cu, &b.expert_act[f * 4 * Cu],
                             e.proj_w, M, 4 * C, C);
    kernels::gelu_backward(dact, &b.expert_pre[f * 4 * Cu], dact, static_cast<size_t>(m) * 4 * Cu);
    kernels::linear_backward(d_in + f * Cu, ge.fc_w, ge.fc_b, dact, in + f * Cu, e.fc_w, M, C,
                             4 * C);
  }
}

template <typename T>
void MoeLayer<T>::plan_exchange(MoeBuffers<T>& b) const {
  const int P = ep_->size(), El = local_experts_;
  const size_t Cu = static_cast<size_t>(C_);
  const MoeRouting& r = b.routing;
  // Element counts: to rank q its experts' rows (contiguous in dispatch order); from rank s what
  // it routed to this rank's experts.
  b.send_counts.assign(P, 0);
  b.recv_counts.assign(P, 0);
  for (int q = 0; q < P; ++q)
    for (int l = 0; l < El; ++l) {
      b.send_counts[q] += static_cast<size_t>(r.kept[q * El + l]) * Cu;
      b.recv_counts[q] += static_cast<size_t>(b.received[q * El + l]) * Cu;
    }
  // Expert l's rows, expert-major: every rank's rows for it, in rank order.
  b.local_first.assign(El + 1, 0);
  for (int l = 0; l < El; ++l) {
    b.local_first[l + 1] = b.local_first[l];
    for (int s = 0; s < P; ++s) b.local_first[l + 1] += b.received[s * El + l];
  }
  const size_t R = static_cast<size_t>(b.local_first[El]);
  fit(b.to_expert_major, R);
  fit(b.expert_pre, R * 4 * Cu);
  fit(b.expert_act, R * 4 * Cu);
  fit(b.expert_out, R * Cu);
  fit(b.expert_in, R * Cu);
  fit(b.staging, std::max(R, static_cast<size_t>(r.rows())) * Cu);
  // Received rows arrive rank-major (rank s: its rows for expert 0, 1, ..); each goes to the
  // next free row of its expert.
  size_t at = 0;
  for (int s = 0; s < P; ++s)
    for (int l = 0; l < El; ++l) {
      const int64_t base = b.local_first[l] + rows_before(b, s, l);
      for (int32_t i = 0; i < b.received[s * El + l]; ++i)
        b.to_expert_major[at++] = static_cast<int32_t>(base + i);
    }
}

template <typename T>
int64_t MoeLayer<T>::rows_before(const MoeBuffers<T>& b, int rank, int l) const {
  int64_t n = 0;
  for (int s = 0; s < rank; ++s) n += b.received[s * local_experts_ + l];
  return n;
}

template <typename T>
void MoeLayer<T>::to_experts(const T* dispatch_order, T* expert_major, MoeBuffers<T>& b) const {
  const size_t Cu = static_cast<size_t>(C_);
  const size_t R = static_cast<size_t>(b.local_first.back());
  ep_->all_to_all_v(dispatch_order, b.send_counts, b.staging.data(), b.recv_counts);
  for (size_t i = 0; i < R; ++i)
    std::memcpy(expert_major + static_cast<size_t>(b.to_expert_major[i]) * Cu, &b.staging[i * Cu],
                Cu * sizeof(T));
}

template <typename T>
void MoeLayer<T>::from_experts(const T* expert_major, T* dispatch_order, MoeBuffers<T>& b) const {
  const size_t Cu = static_cast<size_t>(C_);
  const size_t R = static_cast<size_t>(b.local_first.back());
  for (size_t i = 0; i < R; ++i)
    std::memcpy(&b.staging[i * Cu], expert_major + static_cast<size_t>(b.to_expert_major[i]) * Cu,
                Cu * sizeof(T));
  ep_->all_to_all_v(b.staging.data(), b.recv_counts, dispatch_order, b.send_counts);
}

template struct MoeBuffers<float>;
template struct MoeBuffers<double>;
template class MoeLayer<float>;
template class MoeLayer<double>;

}  // namespace loom::moe
