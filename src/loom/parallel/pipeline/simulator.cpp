#include "loom/parallel/pipeline/simulator.hpp"

#include <algorithm>
#include <map>
#include <numeric>

#include "loom/core/check.hpp"

namespace loom::pipeline {

const ChunkCost& SimCosts::at(int stage, int c) const {
  static const ChunkCost unit;
  if (chunk.empty()) return unit;
  return chunk.at(stage).at(c);
}

SimResult simulate(const Schedule& s, const SimCosts& costs) {
  const int P = s.stages();
  LOOM_CHECK(costs.chunk.empty() || static_cast<int>(costs.chunk.size()) == P,
             "simulate: costs for ", costs.chunk.size(), " stages, schedule has ", P);
  // Arrival times of messages, keyed by (is_gradient, micro-batch, receiving virtual stage).
  std::map<std::tuple<bool, int, int>, double> arrived;
  std::vector<size_t> pc(P, 0);
  std::vector<double> clock(P, 0.0);
  SimResult r;
  r.busy_s.assign(P, 0.0);
  r.peak_in_flight.assign(P, 0);
  r.peak_activation_bytes.assign(P, 0.0);
  r.start.resize(P);
  std::vector<int> in_flight(P, 0);
  std::vector<double> act_bytes(P, 0.0);

  // Runs stage p's next action if its input is there; returns false if it must wait.
  auto step = [&](int p) {
    const Action& a = s.actions(p)[pc[p]];
    const int g = s.virtual_stage(p, a.chunk);
    const ChunkCost& c = costs.at(p, a.chunk);
    double ready = clock[p];
    if (a.op == Op::F && !s.is_first(p, a.chunk)) {
      const auto it = arrived.find({false, a.mb, g});
      if (it == arrived.end()) return false;
      ready = std::max(ready, it->second);
    }
    if (a.op == Op::B && !s.is_last(p, a.chunk)) {
      const auto it = arrived.find({true, a.mb, g});
      if (it == arrived.end()) return false;
      ready = std::max(ready, it->second);
    }
    double cost = 0;
    switch (a.op) {
      case Op::F:
        cost = c.f;
        ++in_flight[p];
        act_bytes[p] += c.activation_bytes;
        r.peak_in_flight[p] = std::max(r.peak_in_flight[p], in_flight[p]);
        r.peak_activation_bytes[p] = std::max(r.peak_activation_bytes[p], act_bytes[p]);
        break;
      case Op::B: cost = c.b; break;
      case Op::W:
        cost = c.w;
        --in_flight[p];
        act_bytes[p] -= c.activation_bytes;
        break;
      case Op::SendAct: arrived[{false, a.mb, g + 1}] = ready + costs.p2p_s; break;
      case Op::SendGrad: arrived[{true, a.mb, g - 1}] = ready + costs.p2p_s; break;
      case Op::RecvAct:
      case Op::RecvGrad: break;
    }
    r.start[p].push_back(ready);
    clock[p] = ready + cost;
    r.busy_s[p] += cost;
    ++pc[p];
    return true;
  };

  for (bool moved = true; moved;) {
    moved = false;
    for (int p = 0; p < P; ++p)
      while (pc[p] < s.actions(p).size() && step(p)) moved = true;
  }
  std::string stuck;
  for (int p = 0; p < P; ++p) {
    if (pc[p] == s.actions(p).size()) continue;
    const Action& a = s.actions(p)[pc[p]];
    stuck += detail::concat(stuck.empty() ? "" : "; ", "stage ", p, " waits at ", to_string(a),
                            " for the ", a.op == Op::F ? "activation" : "gradient", " of micro-batch ",
                            a.mb, " from stage ", a.op == Op::F ? s.prev_stage(p) : s.next_stage(p));
  }
  LOOM_CHECK(stuck.empty(), "schedule '", s.name(), "' deadlocks: ", stuck);

  r.step_s = *std::max_element(clock.begin(), clock.end());
  r.bubble.resize(P);
  for (int p = 0; p < P; ++p) r.bubble[p] = r.step_s > 0 ? 1.0 - r.busy_s[p] / r.step_s : 0.0;
  r.bubble_fraction = std::accumulate(r.bubble.begin(), r.bubble.end(), 0.0) / P;
  return r;
}

}  // namespace loom::pipeline
