#include "loom/parallel/pipeline/schedule.hpp"

#include <algorithm>
#include <deque>
#include <map>

#include "loom/core/check.hpp"
#include "loom/parallel/pipeline/simulator.hpp"

namespace loom::pipeline {

const char* name(Op op) {
  switch (op) {
    case Op::F: return "F";
    case Op::B: return "B";
    case Op::W: return "W";
    case Op::SendAct: return "SendAct";
    case Op::RecvAct: return "RecvAct";
    case Op::SendGrad: return "SendGrad";
    case Op::RecvGrad: return "RecvGrad";
  }
  return "?";
}

std::string to_string(const Action& a) {
  return detail::concat(name(a.op), "(mb ", a.mb, ", chunk ", a.chunk, ")");
}

ScheduleKind parse_schedule_kind(const std::string& s) {
  if (s == "gpipe") return ScheduleKind::GPipe;
  if (s == "1f1b") return ScheduleKind::OneFOneB;
  if (s == "interleaved") return ScheduleKind::Interleaved;
  if (s == "zb1p") return ScheduleKind::ZeroBubbleH1;
  LOOM_FAIL("--schedule: unknown schedule '", s, "' (expected gpipe, 1f1b, interleaved or zb1p)");
}

const char* name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::GPipe: return "gpipe";
    case ScheduleKind::OneFOneB: return "1f1b";
    case ScheduleKind::Interleaved: return "interleaved";
    case ScheduleKind::ZeroBubbleH1: return "zb1p";
  }
  return "?";
}

namespace {

bool is_compute(Op op) { return op == Op::F || op == Op::B || op == Op::W; }

// Per stage: every (mb, chunk) has exactly one F, B, W, in that order, and exactly the sends and
// receives its position in the model implies, on the right side of the compute they serve.
void check_stage(const Schedule& s, int stage) {
  const int m = s.micro_batches(), v = s.virtual_stages();
  // Position of each op for each (mb, chunk); -1 = absent.
  std::map<std::pair<Op, std::pair<int, int>>, int> pos;
  const auto& list = s.actions(stage);
  const std::string where = detail::concat("schedule '", s.name(), "': stage ", stage, ": ");
  for (int i = 0; i < static_cast<int>(list.size()); ++i) {
    const Action& a = list[i];
    LOOM_CHECK(a.mb >= 0 && a.mb < m && a.chunk >= 0 && a.chunk < v, where, to_string(a),
               " is outside ", m, " micro-batches x ", v, " chunks");
    const bool inserted = pos.emplace(std::make_pair(a.op, std::make_pair(a.mb, a.chunk)), i).second;
    LOOM_CHECK(inserted, where, to_string(a), " appears twice (micro-batch ", a.mb, ")");
  }
  auto at = [&](Op op, int mb, int c) {
    const auto it = pos.find({op, {mb, c}});
    return it == pos.end() ? -1 : it->second;
  };
  for (int c = 0; c < v; ++c) {
    for (int mb = 0; mb < m; ++mb) {
      const std::string what = detail::concat(where, "micro-batch ", mb, ", chunk ", c, ": ");
      const int f = at(Op::F, mb, c), b = at(Op::B, mb, c), w = at(Op::W, mb, c);
      LOOM_CHECK(f >= 0 && b >= 0 && w >= 0, what, "needs one F, one B and one W (has ",
                 f >= 0 ? "F " : "", b >= 0 ? "B " : "", w >= 0 ? "W" : "", ")");
      LOOM_CHECK(b > f, what, "B comes before its F");
      LOOM_CHECK(w > b, what, "W comes before its B");
      const bool first = s.is_first(stage, c), last = s.is_last(stage, c);
      const int ra = at(Op::RecvAct, mb, c), sa = at(Op::SendAct, mb, c);
      const int rg = at(Op::RecvGrad, mb, c), sg = at(Op::SendGrad, mb, c);
      LOOM_CHECK(first == (ra < 0), what, first ? "the first virtual stage receives no activation"
                                                : "RecvAct missing");
      LOOM_CHECK(first == (sg < 0), what, first ? "the first virtual stage sends no gradient"
                                                : "SendGrad missing");
      LOOM_CHECK(last == (sa < 0), what, last ? "the last virtual stage sends no activation"
                                              : "SendAct missing");
      LOOM_CHECK(last == (rg < 0), what, last ? "the last virtual stage receives no gradient"
                                              : "RecvGrad missing");
      LOOM_CHECK(first || ra < f, what, "RecvAct comes after the F that needs it");
      LOOM_CHECK(last || sa > f, what, "SendAct comes before the F that produces it");
      LOOM_CHECK(last || rg < b, what, "RecvGrad comes after the B that needs it");
      LOOM_CHECK(first || sg > b, what, "SendGrad comes before the B that produces it");
    }
  }
}

// Messages on one link arrive in the order they were sent, so a receiver must post its receives
// in the order its neighbour sends (else an activation lands in another micro-batch's buffer).
// A message is named by (micro-batch, receiving virtual stage).
void check_link_order(const Schedule& s, Op send, Op recv) {
  const int P = s.stages();
  const bool act = send == Op::SendAct;
  for (int from = 0; from < P; ++from) {
    const int to = act ? s.next_stage(from) : s.prev_stage(from);
    std::vector<std::pair<int, int>> sent, received;
    for (const Action& a : s.actions(from))
      if (a.op == send)
        sent.push_back({a.mb, s.virtual_stage(from, a.chunk) + (act ? 1 : -1)});
    for (const Action& a : s.actions(to))
      if (a.op == recv && (act ? s.prev_stage(to) : s.next_stage(to)) == from)
        received.push_back({a.mb, s.virtual_stage(to, a.chunk)});
    if (from == to) continue;  // one stage: nothing crosses a link
    for (size_t i = 0; i < std::max(sent.size(), received.size()); ++i) {
      LOOM_CHECK(i < sent.size() && i < received.size() && sent[i] == received[i],
                 "schedule '", s.name(), "': stage ", from, " sends ",
                 act ? "activations" : "gradients", " to stage ", to,
                 " in another order than stage ", to, " receives them: message ", i, " is ",
                 i < sent.size() ? detail::concat("micro-batch ", sent[i].first) : "none",
                 " sent vs ",
                 i < received.size() ? detail::concat("micro-batch ", received[i].first) : "none",
                 " received");
    }
  }
}

}  // namespace

Schedule::Schedule(std::string name, int stages, int micro_batches, int virtual_stages,
                   std::vector<std::vector<Action>> actions)
    : name_(std::move(name)),
      stages_(stages),
      micro_batches_(micro_batches),
      virtual_stages_(virtual_stages),
      actions_(std::move(actions)) {
  LOOM_CHECK(stages_ >= 1 && micro_batches_ >= 1 && virtual_stages_ >= 1, "schedule '", name_,
             "': stages, micro-batches and virtual stages must be >= 1 (got ", stages_, ", ",
             micro_batches_, ", ", virtual_stages_, ")");
  LOOM_CHECK(virtual_stages_ == 1 || stages_ >= 2, "schedule '", name_,
             "': virtual stages need at least 2 pipeline stages");
  LOOM_CHECK(static_cast<int>(actions_.size()) == stages_, "schedule '", name_, "': ",
             actions_.size(), " action lists for ", stages_, " stages");
  for (int s = 0; s < stages_; ++s) check_stage(*this, s);
  check_link_order(*this, Op::SendAct, Op::RecvAct);
  check_link_order(*this, Op::SendGrad, Op::RecvGrad);
  simulate(*this);  // throws, naming the stuck stages, if the lists deadlock
}

std::vector<std::vector<Action>> compute_order(ScheduleKind kind, int P, int m, int v) {
  LOOM_CHECK(P >= 1 && m >= 1 && v >= 1, "schedule: stages, micro-batches and virtual stages must be >= 1");
  LOOM_CHECK(kind == ScheduleKind::Interleaved || v == 1, "schedule ", name(kind),
             ": --virtual_stages > 1 needs --schedule interleaved");
  std::vector<std::vector<Action>> out(P);
  for (int s = 0; s < P; ++s) {
    auto& list = out[s];
    auto fwd = [&](int mb, int c = 0) { list.push_back({Op::F, mb, c}); };
    auto bwd = [&](int mb, int c = 0) {
      list.push_back({Op::B, mb, c});
      list.push_back({Op::W, mb, c});
    };
    const int warmup = std::min(P - 1 - s, m);
    switch (kind) {
      case ScheduleKind::GPipe:
        for (int mb = 0; mb < m; ++mb) fwd(mb);
        for (int mb = 0; mb < m; ++mb) bwd(mb);
        break;
      case ScheduleKind::OneFOneB:
        // Warm-up forwards fill the pipeline; then one forward, one backward; then drain.
        for (int mb = 0; mb < warmup; ++mb) fwd(mb);
        for (int i = 0; i < m - warmup; ++i) {
          fwd(warmup + i);
          bwd(i);
        }
        for (int mb = m - warmup; mb < m; ++mb) bwd(mb);
        break;
      case ScheduleKind::ZeroBubbleH1: {
        // 1F1B with each W split from its B: stage s runs its first s steady-state Ws late, so
        // input gradients travel up the pipeline at the speed of B alone, and the late Ws fill
        // the drain's bubble. At most P micro-batches are in flight on any stage, as in 1F1B.
        std::deque<int> pending;  // micro-batches whose W is still to run
        auto b_only = [&](int mb) {
          list.push_back({Op::B, mb, 0});
          pending.push_back(mb);
        };
        auto w_oldest = [&] {
          list.push_back({Op::W, pending.front(), 0});
          pending.pop_front();
        };
        for (int mb = 0; mb < warmup; ++mb) fwd(mb);
        for (int i = 0; i < m - warmup; ++i) {
          fwd(warmup + i);
          b_only(i);
          if (i >= s) w_oldest();
        }
        for (int mb = m - warmup; mb < m; ++mb) {
          b_only(mb);
          w_oldest();
        }
        while (!pending.empty()) w_oldest();
        break;
      }
      case ScheduleKind::Interleaved: {
        // Megatron's interleaved 1F1B: micro-batches go through the chunks in groups of P; the
        // k-th forward of a stage is chunk (k / P) % v of micro-batch (k / (P v)) P + k % P, the
        // k-th backward the same with the chunks in reverse.
        LOOM_CHECK(m % P == 0, "interleaved schedule: --micro_batches (", m,
                   ") must be a multiple of --pp (", P, ")");
        const int total = m * v;
        auto mb_of = [&](int k) { return (k / (P * v)) * P + k % P; };
        auto chunk_of = [&](int k, bool backward) {
          const int c = (k / P) % v;
          return backward ? v - 1 - c : c;
        };
        const int w = m == P ? total : std::min(total, (P - s - 1) * 2 + (v - 1) * P);
        for (int k = 0; k < w; ++k) fwd(mb_of(k), chunk_of(k, false));
        for (int k = 0; k < total - w; ++k) {
          fwd(mb_of(w + k), chunk_of(w + k, false));
          bwd(mb_of(k), chunk_of(k, true));
        }
        for (int k = total - w; k < total; ++k) bwd(mb_of(k), chunk_of(k, true));
        break;
      }
    }
  }
  return out;
}

std::vector<std::vector<Action>> add_communication(const std::vector<std::vector<Action>>& compute,
                                                   int P, int v) {
  const int last_vs = P * v - 1;
  std::vector<std::vector<Action>> out(compute.size());
  for (int s = 0; s < static_cast<int>(compute.size()); ++s) {
    const auto& in = compute[s];
    auto recv_for = [&](size_t j, Action* r) {
      if (j >= in.size()) return false;
      const Action& a = in[j];
      const int g = a.chunk * P + s;
      if (a.op == Op::F && g > 0) *r = {Op::RecvAct, a.mb, a.chunk};
      else if (a.op == Op::B && g < last_vs) *r = {Op::RecvGrad, a.mb, a.chunk};
      else return false;
      return true;
    };
    auto& list = out[s];
    Action r{};
    if (recv_for(0, &r)) list.push_back(r);
    for (size_t j = 0; j < in.size(); ++j) {
      LOOM_CHECK(is_compute(in[j].op), "add_communication: ", to_string(in[j]), " is not a compute action");
      if (recv_for(j + 1, &r)) list.push_back(r);  // overlaps compute j
      list.push_back(in[j]);
      const Action& a = in[j];
      const int g = a.chunk * P + s;
      if (a.op == Op::F && g < last_vs) list.push_back({Op::SendAct, a.mb, a.chunk});
      if (g == 0) continue;
      // A B right before its own W is one fused backward (as in Megatron's GPipe and 1F1B),
      // whose input gradient is sent once the whole backward is done.
      const bool fused = j + 1 < in.size() && in[j + 1] == Action{Op::W, a.mb, a.chunk};
      if ((a.op == Op::B && !fused) || (a.op == Op::W && j > 0 && in[j - 1].op == Op::B &&
                                        in[j - 1].mb == a.mb && in[j - 1].chunk == a.chunk))
        list.push_back({Op::SendGrad, a.mb, a.chunk});
    }
  }
  return out;
}

Schedule make_schedule(ScheduleKind kind, int stages, int micro_batches, int virtual_stages) {
  const std::string n = kind == ScheduleKind::Interleaved
                            ? detail::concat(name(kind), " (v=", virtual_stages, ")")
                            : name(kind);
  return Schedule(n, stages, micro_batches, virtual_stages,
                  add_communication(compute_order(kind, stages, micro_batches, virtual_stages),
                                    stages, virtual_stages));
}

}  // namespace loom::pipeline
