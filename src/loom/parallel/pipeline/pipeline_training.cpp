#include "loom/parallel/pipeline/pipeline_training.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "loom/core/check.hpp"
#include "loom/parallel/pipeline/gradient_frontier.hpp"
#include "loom/parallel/pipeline/kernel_costs.hpp"
#include "loom/parallel/pipeline/runtime.hpp"
#include "loom/parallel/replica_check.hpp"

namespace loom::pipeline {

Partition stage_partition(comm::Communicator& world, const GPTConfig& model, int pp, int seq,
                          int threads, const std::vector<int>& blocks) {
  LOOM_CHECK(pp >= 1 && pp <= model.n_layer, "--pp ", pp, " must be between 1 and n_layer (",
             model.n_layer, "): every stage needs at least one block");
  PartCosts costs;
  if (pp == 1) {  // one stage holds everything: nothing to balance, nothing to time
    costs.block.assign(model.n_layer, 0.0f);
    return partition_with_blocks(costs, {model.n_layer}, 1, "--partition");
  }
  // Rank 0 times the parts and everyone gets the same costs, so all ranks cut the model the same
  // way (and --rebalance can compare every stage's time with its prediction).
  std::vector<float> c(model.n_layer + 2, 0.0f);  // blocks, embedding, head
  if (world.rank() == 0) {
    const planner::KernelCosts k = planner::calibrate_kernel_costs(model, seq, threads);
    std::fill(c.begin(), c.begin() + model.n_layer, static_cast<float>(k.block.total()));
    c[model.n_layer] = static_cast<float>(k.embedding.total());
    c[model.n_layer + 1] = static_cast<float>(k.head.total());
  }
  world.broadcast(c.data(), c.size(), 0);
  costs.block.assign(c.begin(), c.begin() + model.n_layer);
  costs.embedding = c[model.n_layer];
  costs.head = c[model.n_layer + 1];
  return blocks.empty() ? balanced_partition(costs, pp)
                        : partition_with_blocks(costs, blocks, pp, "--partition");
}

ModelShard stage_shard(const Partition& p, int pp_rank, int tp_rank, int tp_size,
                       int virtual_stages) {
  const int pp = p.stages() / virtual_stages;
  LOOM_CHECK(virtual_stages >= 1 && pp * virtual_stages == p.stages() && pp_rank < pp,
             "stage_shard: a partition of ", p.stages(), " parts is not ", virtual_stages,
             " chunks per stage (stage ", pp_rank, ")");
  ModelShard s;
  s.tp_rank = tp_rank;
  s.tp_size = tp_size;
  for (int c = 0; c < virtual_stages && virtual_stages > 1; ++c)
    s.chunks.push_back({p.first.at(c * pp + pp_rank), p.first.at(c * pp + pp_rank + 1)});
  s.first_block = p.first.at(pp_rank);
  s.last_block = p.first.at((virtual_stages - 1) * pp + pp_rank + 1);
  s.has_embedding = pp_rank == 0;
  s.has_head = pp_rank == pp - 1;
  return s;
}

PipelineTraining::PipelineTraining(parallel::Mesh& mesh, GPT& model, ScheduleKind kind,
                                   int micro_batches, int virtual_stages, Recompute recompute)
    : mesh_(mesh),
      model_(model),
      schedule_(make_schedule(kind, mesh.shape().pp, micro_batches, virtual_stages)),
      lanes_(mesh.pp(), /*wrap=*/virtual_stages > 1) {
  LOOM_CHECK(model.shard().num_chunks() == virtual_stages, "pipeline: the stage's model has ",
             model.shard().num_chunks(), " chunks for ", virtual_stages, " virtual stages");
  for (int c = 0; c < virtual_stages; ++c)
    chunks_.push_back(std::make_unique<GptStageChunk>(
        model, workspace_, micro_batches,
        ExecutorOptions{c, recompute, /*split_backward=*/kind == ScheduleKind::ZeroBubbleH1}));
  for (const auto& p : model.layout())
    if (p.name == "transformer.wte.weight") wte_ = &p;
}

double PipelineTraining::forward_backward(const int32_t* tokens, const int32_t* targets, int batch,
                                          int seq, float grad_scale, Rng& dropout_rng,
                                          const GPT::GradReadyFn& on_ready, bool step_end) {
  const int m = schedule_.micro_batches();
  GradientFrontier frontier(model_.num_params(), on_ready, tied_range());
  const GPT::GradReadyFn chunk_ready =
      on_ready ? GPT::GradReadyFn([&](size_t b, size_t e) { frontier.ready(b, e); }) : nullptr;
  for (auto& c : chunks_)
    c->set_batch(tokens, targets, batch, seq, grad_scale / static_cast<float>(m), dropout_rng,
                 chunk_ready);
  compute_s_ += run_pipeline_step(schedule_, mesh_.coord().pp, chunk_pointers(chunks_), lanes_).busy_s();
  dropout_rng.next_u64();  // the key the micro-batches used
  if (step_end) {
    reduce_tied_embedding();
    frontier.release_held();
  }
  return model_.shard().has_head ? chunks_.back()->loss_sum() / m : 0.0;
}

moe::MoeStats PipelineTraining::moe_stats() const {
  moe::MoeStats sum;
  for (const auto& c : chunks_) sum += c->moe_sum();
  return sum * (1.0 / schedule_.micro_batches());
}

double PipelineTraining::forward_only(const int32_t* tokens, const int32_t* targets, int batch,
                                      int seq) {
  const ModelShard& s = model_.shard();
  const size_t n = static_cast<size_t>(batch) * seq * model_.config().d_model;
  float loss = 0;
  // The chunks in turn: chunk c of stage r passes its output to chunk c of stage r + 1, and the
  // last stage to chunk c + 1 of stage 0 (the lanes wrap around).
  for (int c = 0; c < s.num_chunks(); ++c) {
    GptExecutor& chunk = chunks_[c]->executor();
    const bool heads = chunk.has_head();
    if (chunk.has_embedding()) {
      loss = chunk.forward(eval_set_, tokens, heads ? targets : nullptr, batch, seq,
                           /*train=*/false);
    } else {
      auto in = std::make_shared<std::vector<float>>(n);
      lanes_.act_in()->post_recv(in).get();
      loss = chunk.forward_activation(eval_set_, in->data(), heads ? targets : nullptr, batch, seq,
                                      /*train=*/false);
    }
    if (!heads) {
      const float* out = chunk.output(eval_set_);
      lanes_.act_out()->post_send(std::make_shared<std::vector<float>>(out, out + n)).get();
    }
  }
  return s.has_head ? loss : 0.0;  // the set holds the last chunk's logits
}

std::vector<int32_t> PipelineTraining::generate(const std::vector<int32_t>& prompt,
                                                int max_new_tokens, const SampleOptions& opts,
                                                Rng& rng) {
  const int V = model_.config().vocab_size;
  std::vector<float> row(V);
  return generate_tokens(prompt, max_new_tokens, model_.config().context_len,
                         [&](const int32_t* window, int n) {
                           forward_only(window, nullptr, 1, n);
                           // Token ids < 2^24 are exact in a float.
                           float token = 0;
                           if (model_.shard().has_head) {
                             chunks_.back()->executor().logits_row(eval_set_, n - 1, row.data());
                             token = static_cast<float>(sample_token(row.data(), V, opts, rng));
                           }
                           mesh_.pp().broadcast(&token, 1, mesh_.shape().pp - 1);
                           return static_cast<int32_t>(token);
                         });
}

void PipelineTraining::reduce_tied_embedding() {
  if (mesh_.shape().pp == 1 || wte_ == nullptr) return;
  mesh_.embedding().allreduce(model_.grads() + wte_->offset, wte_->numel);
}

parallel::FlatRange PipelineTraining::tied_range() const {
  if (mesh_.shape().pp > 1 && wte_ != nullptr) return {wte_->offset, wte_->offset + wte_->numel};
  return {0, 0};
}

parallel::FlatRange PipelineTraining::norm_skip() const {
  if (mesh_.shape().pp > 1 && model_.shard().has_head && wte_ != nullptr)
    return {wte_->offset, wte_->offset + wte_->numel};
  return {0, 0};
}

double PipelineTraining::sum_over_stages(double x) {
  return mesh_.shape().pp == 1 ? x : parallel::allreduce_sum(mesh_.pp(), x);
}

void PipelineTraining::gather_stage_tensor(const ParamInfo& whole_p, float* whole) {
  if (mesh_.coord().pp > 0 && whole_p.name == "transformer.wte.weight")
    std::fill(whole, whole + whole_p.numel, 0.0f);
  // The stages hold disjoint tensors, so their sum assembles them exactly (x + 0 = x).
  mesh_.pp().allreduce(whole, whole_p.numel);
}

}  // namespace loom::pipeline
