#pragma once
// The MLP half of an MoE block (issue 19): a bias-free router picks top_k of E experts for each
// token, each expert a GPT-2 MLP (c_fc, GELU, c_proj), and the token's output is the gate-weighted
// sum of its experts' outputs (the block adds the residual). Experts may be split over an
// ExpertParallelGroup: the tokens travel to their experts' ranks and back with all-to-alls.
//
// Shapes (N tokens of this rank, C = d_model, E experts, k = top_k, P ep ranks, El = E / P local
// experts, A kept assignments of this rank's tokens, R rows this rank's experts compute):
//   x [N,C] (ln_2's output) -> logits = x @ router [N,E] -> routing (moe_routing.hpp)
//   dispatched [A,C]: x of each kept assignment, expert-major ("dispatch order")
//     ep: all-to-all to the experts' ranks, then regrouped expert-major -> expert_in [R,C]
//   expert l: pre = expert_in @ c_fc + b [., 4C]; act = gelu(pre); out = act @ c_proj + b [., C]
//     ep: regrouped by source rank, all-to-all back -> returned [A,C] in dispatch order
//   y[n] = sum over n's kept assignments j of gates[n,j] * returned[row(n,j)]
// With P = 1 expert_in is `dispatched` and `returned` is expert_out (no copies).
#include <cstdint>
#include <vector>

#include "loom/core/check.hpp"
#include "loom/model/moe/expert_parallel_group.hpp"
#include "loom/model/moe/moe_config.hpp"
#include "loom/model/moe/moe_routing.hpp"

namespace loom::moe {

// One expert's tensors: a GPT-2 MLP in Conv1D layout ([in, out]).
template <typename T>
struct ExpertTensors {
  T* fc_w = nullptr;    // [C, 4C]
  T* fc_b = nullptr;    // [4C]
  T* proj_w = nullptr;  // [4C, C]
  T* proj_b = nullptr;  // [C]
};

// An MoE layer's tensors on this rank (parameters, or their gradients).
template <typename T>
struct MoeTensors {
  T* router = nullptr;                     // [C, E], whole on every rank
  std::vector<ExpertTensors<T>> experts;  // this rank's El experts, in expert order
};

// A read-only view of the same tensors (what forward and backward read).
template <typename T>
MoeTensors<const T> as_const(const MoeTensors<T>& t) {
  MoeTensors<const T> c;
  c.router = t.router;
  for (const ExpertTensors<T>& e : t.experts) c.experts.push_back({e.fc_w, e.fc_b, e.proj_w, e.proj_b});
  return c;
}

// What one forward saw (this rank's tokens).
struct MoeStats {
  double load_balance_loss = 0;  // a * E * sum f_i P_i (times its coefficient)
  double z_loss = 0;             // z * mean logsumexp^2 (times its coefficient)
  double dropped_share = 0;      // assignments dropped by the capacity / N k
  double max_over_mean_load = 0;  // kept assignments: the busiest expert's over the mean

  // Field by field: sums of several forwards' stats, and their mean (sum times 1 / count).
  MoeStats& operator+=(const MoeStats& o) {
    load_balance_loss += o.load_balance_loss;
    z_loss += o.z_loss;
    dropped_share += o.dropped_share;
    max_over_mean_load += o.max_over_mean_load;
    return *this;
  }
  MoeStats operator*(double s) const {
    return {load_balance_loss * s, z_loss * s, dropped_share * s, max_over_mean_load * s};
  }
};

// Everything forward keeps for backward, and backward's scratch. Buffers grow to the largest
// size asked for and never shrink; the first forward sizes them for the worst routing of its N
// (every assignment kept, all on this rank's experts), so no later call with that N allocates.
template <typename T>
struct MoeBuffers {
  std::vector<T> logits, probs;  // [N, E]
  std::vector<T> lse;            // [N] logsumexp of each row of logits
  std::vector<T> gates;          // [N, k]
  MoeRouting routing;
  std::vector<T> dispatched;     // [A, C]
  std::vector<T> returned;       // [A, C] (ep > 1)
  std::vector<T> expert_in;      // [R, C] (ep > 1)
  std::vector<T> expert_pre;     // [R, 4C] before GELU
  std::vector<T> expert_act;     // [R, 4C] after GELU
  std::vector<T> expert_out;     // [R, C]
  // ep > 1: rows each rank sends this rank's expert l, [P, El]; where expert l's rows start in
  // expert_in [El + 1]; row of expert_in of each received row (rank-major order) [R]; element
  // counts per rank of the two directions; rank-major staging for the all-to-alls [max(A,R), C].
  std::vector<int32_t> received;
  std::vector<int64_t> local_first;
  std::vector<int32_t> to_expert_major;
  std::vector<size_t> send_counts, recv_counts;
  std::vector<T> staging;
  // Backward.
  std::vector<T> dgates;                        // [N, k]
  std::vector<T> dlogits;                       // [N, E]
  std::vector<T> d_returned, d_dispatched;      // [A, C]
  std::vector<T> d_expert_out, d_expert_in;     // [R, C] (ep > 1)
  std::vector<T> d_expert_act;                  // [R, 4C]

  // Bytes the buffers hold now.
  size_t bytes() const;
};

// Bytes of an MoeBuffers after a forward and a backward of N tokens at ep 1 (every assignment
// kept: the first forward sizes the buffers for that worst case); what activation_plan counts
// for each MoE block.
size_t moe_buffer_bytes(const MoeConfig& cfg, int d_model, size_t N, size_t elem_bytes);

template <typename T>
class MoeLayer {
 public:
  // `ep` (null: ep 1) splits the experts: rank r holds experts r*El .. (r+1)*El - 1.
  MoeLayer(const MoeConfig& cfg, int d_model, ExpertParallelGroup* ep = nullptr);

  int first_expert() const { return first_expert_; }
  int local_experts() const { return local_experts_; }
  // This layer's experts (and the router) out of a block's whole set of E experts.
  template <typename U>
  MoeTensors<U> local(const MoeTensors<U>& all) const {
    LOOM_CHECK(static_cast<int>(all.experts.size()) == cfg_.experts, "moe layer: ",
               all.experts.size(), " expert tensors, expected all ", cfg_.experts);
    MoeTensors<U> t;
    t.router = all.router;
    t.experts.assign(all.experts.begin() + first_expert_,
                     all.experts.begin() + first_expert_ + local_experts_);
    return t;
  }

  // y[N,C] (overwritten) from x[N,C]. `dropless`: no capacity (evaluation and generation).
  // Collective over the ep group.
  MoeStats forward(T* y, const T* x, int N, const MoeTensors<const T>& w, MoeBuffers<T>& b,
                   bool dropless) const;
  // dx[N,C] (overwritten) and g += the gradients, from dy[N,C] and the buffers of the forward of
  // the same x. dloss: the weight of the two auxiliary losses in the loss (they are added to it
  // as MoeStats gives them: dloss 1). Collective over the ep group.
  void backward(T* dx, const T* dy, const T* x, const MoeTensors<const T>& w,
                const MoeTensors<T>& g, MoeBuffers<T>& b, T dloss) const;

 private:
  // ep > 1, after forward's exchange of counts (b.received): the element counts of the
  // all-to-alls, local_first and to_expert_major.
  void plan_exchange(MoeBuffers<T>& b) const;
  // Rows ranks 0..rank-1 send this rank's expert l.
  int64_t rows_before(const MoeBuffers<T>& b, int rank, int l) const;
  // ep > 1: rows in dispatch order [A, C] -> this rank's experts' rows, expert-major [R, C].
  void to_experts(const T* dispatch_order, T* expert_major, MoeBuffers<T>& b) const;
  // ep > 1: the reverse.
  void from_experts(const T* expert_major, T* dispatch_order, MoeBuffers<T>& b) const;
  void expert_forward(const T* in, T* out, const MoeTensors<const T>& w, MoeBuffers<T>& b) const;
  void expert_backward(const T* d_out, const T* in, T* d_in, const MoeTensors<const T>& w,
                       const MoeTensors<T>& g, MoeBuffers<T>& b) const;

  MoeConfig cfg_;
  int C_;
  ExpertParallelGroup* ep_;
  int first_expert_, local_experts_;
};

}  // namespace loom::moe
