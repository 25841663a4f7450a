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
                          int threads) {
  LOOM_CHECK(pp >= 1 && pp <= model.n_layer, "--pp ", pp, " must be between 1 and n_layer (",
             model.n_layer, "): every stage needs at least one block");
  // Rank 0 times the parts; everyone gets its partition, so all ranks cut the model the same way.
  std::vector<float> first(pp + 1, 0.0f);
  PartCosts costs;
  if (world.rank() == 0) {
    const planner::KernelCosts k = planner::calibrate_kernel_costs(model, seq, threads);
    costs.block.assign(model.n_layer, k.block.total());
    costs.embedding = k.embedding.total();
    costs.head = k.head.total();
    const Partition p = balanced_partition(costs, pp);
    for (int s = 0; s <= pp; ++s) first[s] = static_cast<float>(p.first[s]);
  }
  world.broadcast(first.data(), first.size(), 0);
  Partition p;
  for (float f : first) p.first.push_back(static_cast<int>(f));
  if (world.rank() == 0) {
    p.cost.clear();
    for (int s = 0; s < pp; ++s) {
      double x = 0;
      for (int b = p.first[s]; b < p.first[s + 1]; ++b) x += costs.block[b];
      if (s == 0) x += costs.embedding;
      if (s == pp - 1) x += costs.head;
      p.cost.push_back(x);
    }
  } else {
    p.cost.assign(pp, 0.0);
  }
  return p;
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
  run_pipeline_step(schedule_, mesh_.coord().pp, {&chunk_}, lanes_);
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
