// One activation-size function (model/activation_plan), three users that must agree with it:
// the model's own buffers (set, scratch, logits, and a split B's release of its B-only buffers),
// `loom memory`'s activation entries (parallel/planner/memory_model) and the planner's activation estimate
// (parallel/planner), at tp 1 and 2, recompute none / selective / full, the split backward, with
// and without the embedding and the head, with and without dropout.
#include <gtest/gtest.h>
#include <omp.h>

#include <string>
#include <vector>

#include "loom/core/rng.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/gpt.hpp"
#include "loom/model/model_runner.hpp"
#include "loom/parallel/planner/planner.hpp"
#include "loom/parallel/planner/memory_model.hpp"

namespace loom {
namespace {

GPTConfig plan_test_config(float dropout) {
  GPTConfig c;
  c.vocab_size = 101;  // not a multiple of tp 2: wte rows are padded
  c.context_len = 16;
  c.n_layer = 4;
  c.n_head = 4;
  c.d_model = 32;
  c.dropout = dropout;
  return c;
}

const char* name(Recompute r) { return recompute_name(r); }

struct Case {
  int tp;
  Recompute recompute;
  bool split, embedding, head;
  float dropout;
  std::string describe() const {
    return "tp " + std::to_string(tp) + ", recompute " + name(recompute) + (split ? ", split" : "") +
           (embedding ? ", embedding" : "") + (head ? ", head" : "") +
           (dropout > 0 ? ", dropout" : "");
  }
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (int tp : {1, 2})
    for (Recompute r : {Recompute::kNone, Recompute::kSelective, Recompute::kFull})
      for (bool split : {false, true})
        for (int ends = 0; ends < 4; ++ends) {
          if (split && r == Recompute::kFull) continue;  // refused by the model
          out.push_back({tp, r, split, (ends & 1) != 0, (ends & 2) != 0, ends == 3 ? 0.1f : 0.0f});
        }
  return out;
}

// The model's buffers are the plan's: a set after its forward (and after a fused backward), the
// shared scratch, the logits, and under the split backward a set waiting for W (its B-only
// buffers back in the model's pool).
TEST(ActivationPlan, IsWhatTheModelAllocates) {
  const int B = 3, T = 16;
  const int threads = omp_get_max_threads();
  for (const Case& k : cases()) {
    const GPTConfig cfg = plan_test_config(k.dropout);
    ShapesOnlyTpGroup group(0, k.tp);
    const ModelShard shard{0, k.tp, 1, 3, k.embedding, k.head};
    GPTModel<float> model(cfg, shard, k.tp > 1 ? &group : nullptr);
    model.init_weights(1);
    ModelRunner<float> m(model, {0, k.recompute, k.split});
    const ActivationBytes plan =
        activation_plan(cfg, activation_shape(cfg, shard, 0, {B, T, k.recompute, k.split, threads}));

    const size_t N = static_cast<size_t>(B) * T;
    std::vector<int32_t> tokens(N), targets(N);
    for (size_t i = 0; i < N; ++i) {
      tokens[i] = static_cast<int32_t>(i * 7 % cfg.vocab_size);
      targets[i] = static_cast<int32_t>(i * 5 % cfg.vocab_size);
    }
    std::vector<float> input(N * cfg.d_model, 0.5f), doutput(N * cfg.d_model, 0.25f);
    Rng rng(3);
    const int32_t* tgt = k.head ? targets.data() : nullptr;
    if (k.embedding)
      m.forward(tokens.data(), tgt, B, T, /*train=*/true, &rng);
    else
      m.forward_activation(input.data(), tgt, B, T, /*train=*/true, &rng);
    EXPECT_EQ(m.set_bytes(), plan.set()) << k.describe();
    EXPECT_EQ(m.shared_activation_bytes(), plan.scratch) << k.describe();
    EXPECT_EQ(m.logits_bytes(), plan.logits) << k.describe();
    EXPECT_EQ(m.activation_bytes(), plan.total()) << k.describe();
    const float* dout = k.head ? nullptr : doutput.data();
    if (k.split) {
      m.backward_input(1.0f, dout);
      EXPECT_EQ(m.set_bytes(), plan.after_b()) << k.describe();
      EXPECT_EQ(m.shared_activation_bytes(), plan.scratch + plan.b_only() + plan.masks())
          << k.describe() << ": the pool holds the released B-only buffers";
      m.backward_weights();
    } else {
      if (k.head)
        m.backward(1.0f);
      else
        m.backward_from_output(dout);
      EXPECT_EQ(m.set_bytes(), plan.after_b()) << k.describe();
      EXPECT_EQ(m.activation_bytes(), plan.total()) << k.describe();
    }
  }
}

double activation_items(const std::vector<MemoryItem>& items) {
  double sum = 0;
  for (const auto& i : items)
    if (i.group == "activations") sum += i.bytes;
  return sum;
}

// `loom memory` predicts, for one rank without a pipeline, the activations of the model that the
// trainer builds (the whole model, cut for tp): what that model allocates.
TEST(ActivationPlan, LoomMemoryPredictsWhatTheModelAllocates) {
  const int B = 2, T = 16;
  for (int tp : {1, 2})
    for (Recompute r : {Recompute::kNone, Recompute::kSelective, Recompute::kFull})
      for (int variant = 0; variant < 3; ++variant) {
        if (variant == 2 && tp > 1) continue;  // MoE blocks run at tp 1
        GPTConfig cfg = plan_test_config(variant == 1 ? 0.1f : 0.0f);
        if (variant == 2) cfg.moe_experts = 4;  // blocks 1 and 3: MoE
        const std::string what = std::string("tp ") + std::to_string(tp) + ", recompute " +
                                 name(r) + (variant == 1 ? ", dropout" : "") +
                                 (variant == 2 ? ", MoE" : "");
        ShapesOnlyTpGroup group(0, tp);
        GPTModel<float> model(cfg, ModelShard{0, tp}, tp > 1 ? &group : nullptr);
        ModelRunner<float> m(model, {0, r});
        std::vector<int32_t> tokens(static_cast<size_t>(B) * T, 1);
        Rng rng(3);
        m.forward(tokens.data(), tokens.data(), B, T, /*train=*/true, &rng);
        m.backward(1.0f);
        MemoryOptions o;
        o.model = cfg;
        o.batch = B;
        o.seq = T;
        o.threads = omp_get_max_threads();
        o.tp = tp;
        o.recompute = r;
        EXPECT_EQ(activation_items(predict_memory(o)), static_cast<double>(m.activation_bytes()))
            << what;
      }
}

// The planner's activations of a layout without a pipeline are the model's; with one, the
// planner (its partition, its chunks' peaks of sets between F and W and between F and B) and
// `loom memory` (its sets in flight per stage) count the same sets of the same plans.
TEST(ActivationPlan, PlannerAgreesWithTheModelAndLoomMemory) {
  using pipeline::ScheduleKind;
  planner::KernelCosts k;
  k.seq = 16;
  k.block = {1e-3, 2e-3, 1e-3};
  k.threads = omp_get_max_threads();
  planner::PlanRequest req;
  req.model = plan_test_config(0);
  req.seq = 16;
  for (Recompute r : {Recompute::kNone, Recompute::kSelective, Recompute::kFull}) {
    req.recompute = r;
    for (int tp : {1, 2}) {
      req.world = tp;
      req.global_batch = 2;
      const planner::Prediction p =
          planner::predict(req, k, {}, {1, tp, 1, ScheduleKind::OneFOneB, 1, 1});
      ShapesOnlyTpGroup group(0, tp);
      GPTModel<float> model(req.model, ModelShard{0, tp}, tp > 1 ? &group : nullptr);
      ModelRunner<float> m(model, {0, r});
      std::vector<int32_t> tokens(2 * 16, 1);
      m.forward(tokens.data(), tokens.data(), 2, 16, /*train=*/false);
      m.backward(1.0f);
      EXPECT_NEAR(p.activation_gb * 1e9, static_cast<double>(m.activation_bytes()), 1e-3)
          << "tp " << tp << ", recompute " << name(r);
    }
    for (ScheduleKind sched : {ScheduleKind::GPipe, ScheduleKind::OneFOneB,
                               ScheduleKind::ZeroBubbleH1}) {
      if (r == Recompute::kFull && sched == ScheduleKind::ZeroBubbleH1) continue;
      req.world = 2;
      req.global_batch = 8;
      const planner::Prediction p = planner::predict(req, k, {}, {1, 1, 2, sched, 1, 4});
      MemoryOptions o;
      o.model = req.model;
      o.batch = 8;
      o.seq = 16;
      o.threads = k.threads;
      o.recompute = r;
      o.pp = 2;
      o.micro_batches = 4;
      o.schedule = sched;
      o.stage_first = p.stage_first_block;
      double most = 0;
      for (o.stage = 0; o.stage < 2; ++o.stage)
        most = std::max(most, activation_items(predict_memory(o)));
      EXPECT_NEAR(p.activation_gb * 1e9, most, 1e-3)
          << pipeline::name(sched) << ", recompute " << name(r);
    }
  }
}

}  // namespace
}  // namespace loom
