#include "loom/parallel/pipeline/runtime.hpp"

#include <chrono>
#include <map>
#include <set>

#include "loom/core/check.hpp"

namespace loom::pipeline {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

using Key = std::pair<int, int>;  // (micro-batch, chunk)

Lane& need(Lane* lane, const char* which, int stage) {
  LOOM_CHECK(lane != nullptr, "pipeline stage ", stage, ": the schedule needs the ", which,
             " lane, which this stage's P2PLanes lack (built without wrap-around?)");
  return *lane;
}

// Index of the next compute action after i, or list.size().
size_t next_compute(const std::vector<Action>& list, size_t i) {
  for (size_t j = i + 1; j < list.size(); ++j)
    if (list[j].op == Op::F || list[j].op == Op::B || list[j].op == Op::W) return j;
  return list.size();
}

}  // namespace

double StepTrace::busy_s() const {
  double t = 0;
  for (const auto& s : spans) t += s.end_s - s.start_s;
  return t;
}

StepTrace run_pipeline_step(const Schedule& schedule, int stage,
                            const std::vector<StageChunk*>& chunks, P2PLanes& lanes) {
  LOOM_CHECK(static_cast<int>(chunks.size()) == schedule.virtual_stages(), "pipeline stage ", stage,
             ": ", chunks.size(), " chunks for a schedule with ", schedule.virtual_stages(),
             " virtual stages");
  const auto& list = schedule.actions(stage);
  std::map<Key, Buffer> act_in, act_out, grad_from_next, grad_to_prev;
  std::map<Key, std::shared_future<void>> act_arrival, grad_arrival;
  std::vector<std::shared_future<void>> sends;
  std::set<Key> fused;  // Ws already run inside their B
  StepTrace trace;
  trace.start_s = now_s();
  auto timed = [&](const Action& a, const auto& body) {
    const double t0 = now_s();
    body();
    trace.spans.push_back({a, t0, now_s()});
  };
  auto buffer = [](size_t n) { return std::make_shared<std::vector<float>>(n); };

  try {
    for (size_t i = 0; i < list.size(); ++i) {
      const Action& a = list[i];
      const Key k{a.mb, a.chunk};
      StageChunk& chunk = *chunks[a.chunk];
      const bool first = schedule.is_first(stage, a.chunk), last = schedule.is_last(stage, a.chunk);
      switch (a.op) {
        case Op::RecvAct: {
          act_in[k] = buffer(chunk.input_size());
          act_arrival[k] = need(lanes.act_in(), "act_in", stage).post_recv(act_in[k]);
          break;
        }
        case Op::RecvGrad: {
          grad_from_next[k] = buffer(chunk.output_size());
          grad_arrival[k] = need(lanes.grad_in(), "grad_in", stage).post_recv(grad_from_next[k]);
          break;
        }
        case Op::F: {
          const float* in = nullptr;
          if (!first) {
            act_arrival.at(k).get();  // rethrows a failed receive
            act_arrival.erase(k);
            in = act_in.at(k)->data();
          }
          Buffer out = last ? nullptr : buffer(chunk.output_size());
          timed(a, [&] { chunk.forward(a.mb, in, out ? out->data() : nullptr); });
          act_in.erase(k);
          if (out) act_out[k] = out;
          break;
        }
        case Op::B: {
          const float* grad_out = nullptr;
          if (!last) {
            grad_arrival.at(k).get();
            grad_arrival.erase(k);
            grad_out = grad_from_next.at(k)->data();
          }
          Buffer grad_in = first ? nullptr : buffer(chunk.input_size());
          float* gi = grad_in ? grad_in->data() : nullptr;
          const size_t j = next_compute(list, i);
          if (j < list.size() && list[j] == Action{Op::W, a.mb, a.chunk}) {
            timed(a, [&] { chunk.backward(a.mb, grad_out, gi); });
            fused.insert(k);
          } else {
            timed(a, [&] { chunk.backward_input(a.mb, grad_out, gi); });
          }
          grad_from_next.erase(k);
          if (grad_in) grad_to_prev[k] = grad_in;
          break;
        }
        case Op::W:
          if (fused.erase(k) == 0) timed(a, [&] { chunk.backward_weights(a.mb); });
          break;
        case Op::SendAct:
          sends.push_back(need(lanes.act_out(), "act_out", stage).post_send(act_out.at(k)));
          act_out.erase(k);  // the lane holds it until sent
          break;
        case Op::SendGrad:
          sends.push_back(need(lanes.grad_out(), "grad_out", stage).post_send(grad_to_prev.at(k)));
          grad_to_prev.erase(k);
          break;
      }
    }
    for (auto& f : sends) f.get();
  } catch (...) {
    // A failed transfer or chunk: give up the transfers still posted, so that this stage stops
    // now (and its neighbours, seeing it gone, stop too) instead of waiting out their timeouts.
    lanes.abandon();
    throw;
  }
  trace.end_s = now_s();
  return trace;
}

}  // namespace loom::pipeline
