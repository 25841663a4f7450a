#include "loom/parallel/pipeline/pipeline_training.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "loom/core/check.hpp"
#include "loom/parallel/pipeline/runtime.hpp"
#include "loom/parallel/planner/kernel_costs.hpp"
#include "loom/parallel/replica_check.hpp"

namespace loom::pipeline {

Partition stage_partition(comm::Communicator& world, const GPTConfig& model, int pp, int seq,
                          int threads, const std::vector<int>& blocks) {
  LOOM_CHECK(pp >= 1 && pp <= model.n_layer, "--pp ", pp, " must be between 1 and n_layer (",
             model.n_layer, "): every stage needs at least one block");
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
  PartCosts costs;
  costs.block.assign(c.begin(), c.begin() + model.n_layer);
  costs.embedding = c[model.n_layer];
  costs.head = c[model.n_layer + 1];
  return blocks.empty() ? balanced_partition(costs, pp)
                        : partition_with_blocks(costs, blocks, pp, "--partition");
}

ModelShard stage_shard(const Partition& p, int pp_rank, int tp_rank, int tp_size) {
  ModelShard s;
  s.tp_rank = tp_rank;
  s.tp_size = tp_size;
  s.first_block = p.first.at(pp_rank);
  s.last_block = p.first.at(pp_rank + 1);
  s.has_embedding = pp_rank == 0;
  s.has_head = pp_rank == p.stages() - 1;
  return s;
}

PipelineTraining::PipelineTraining(parallel::Mesh& mesh, GPT& model, ScheduleKind kind,
                                   int micro_batches)
    : mesh_(mesh),
      model_(model),
      schedule_(make_schedule(kind, mesh.shape().pp, micro_batches)),
      lanes_(mesh.pp(), /*wrap=*/false),
      chunk_(model, micro_batches, /*split_backward=*/kind == ScheduleKind::ZeroBubbleH1) {
  for (const auto& p : model.layout())
    if (p.name == "transformer.wte.weight") wte_ = &p;
}

double PipelineTraining::forward_backward(const int32_t* tokens, const int32_t* targets, int batch,
                                          int seq, float grad_scale) {
  const int m = schedule_.micro_batches();
  chunk_.set_batch(tokens, targets, batch, seq, grad_scale / static_cast<float>(m));
  compute_s_ += run_pipeline_step(schedule_, mesh_.coord().pp, {&chunk_}, lanes_).busy_s();
  return model_.shard().has_head ? chunk_.loss_sum() / m : 0.0;
}

double PipelineTraining::forward_only(const int32_t* tokens, const int32_t* targets, int batch,
                                      int seq) {
  const ModelShard& s = model_.shard();
  const size_t n = static_cast<size_t>(batch) * seq * model_.config().d_model;
  float loss = 0;
  if (s.has_embedding) {
    loss = model_.forward(tokens, s.has_head ? targets : nullptr, batch, seq, /*train=*/false);
  } else {
    auto in = std::make_shared<std::vector<float>>(n);
    lanes_.act_in()->post_recv(in).get();
    loss = model_.forward_activation(in->data(), s.has_head ? targets : nullptr, batch, seq,
                                     /*train=*/false);
  }
  if (!s.has_head) {
    auto out = std::make_shared<std::vector<float>>(model_.output(), model_.output() + n);
    lanes_.act_out()->post_send(out).get();
    return 0.0;
  }
  return loss;
}

void PipelineTraining::reduce_tied_embedding() {
  if (mesh_.shape().pp == 1 || wte_ == nullptr) return;
  mesh_.embedding().allreduce(model_.grads() + wte_->offset, wte_->numel);
}

double PipelineTraining::global_grad_sq_sum(const std::function<double()>& sq_sum) {
  double sq = 0;
  if (mesh_.shape().pp > 1 && model_.shard().has_head && wte_ != nullptr) {
    float* g = model_.grads() + wte_->offset;
    std::vector<float> saved(g, g + wte_->numel);
    std::fill(g, g + wte_->numel, 0.0f);
    sq = sq_sum();
    std::copy(saved.begin(), saved.end(), g);
  } else {
    sq = sq_sum();
  }
  return sum_over_stages(sq);
}

double PipelineTraining::sum_over_stages(double x) { return parallel::allreduce_sum(mesh_.pp(), x); }

void PipelineTraining::gather_stages(const std::vector<ParamInfo>& whole_layout, float* whole) {
  if (mesh_.coord().pp > 0)
    for (const auto& p : whole_layout)
      if (p.name == "transformer.wte.weight") std::fill(whole + p.offset, whole + p.offset + p.numel, 0.0f);
  // The stages hold disjoint tensors, so their sum assembles them exactly (x + 0 = x).
  mesh_.pp().allreduce(whole, whole_layout.back().offset + whole_layout.back().numel);
}

}  // namespace loom::pipeline
