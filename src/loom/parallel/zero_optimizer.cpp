#include "loom/parallel/zero_optimizer.hpp"

#include <algorithm>

#include "loom/core/check.hpp"
#include "loom/optim/grad_clip.hpp"
#include "loom/parallel/replica_check.hpp"

namespace loom::parallel {
namespace {

size_t total_params(const std::vector<ParamInfo>& layout) {
  return layout.empty() ? 0 : layout.back().offset + layout.back().numel;
}

}  // namespace

ZeroOptimizer::ZeroOptimizer(comm::Communicator& comm, const std::vector<ParamInfo>& layout,
                             const AdamWParams& hp)
    : comm_(comm),
      layout_(layout),
      hp_(hp),
      count_(total_params(layout)),
      shard_(comm::block_of(count_, comm.size(), comm.rank())),
      opt_(layout, hp, shard_.offset, shard_.offset + shard_.count) {}

void ZeroOptimizer::reduce_gradients(float* grads) {
  comm_.reduce_scatter(grads, count_, comm::ReduceOp::Avg);
}

double ZeroOptimizer::grad_sq_sum(const float* grads) {
  return allreduce_sum(comm_, loom::grad_sq_sum(grads + shard_.offset, shard_.count));
}

void ZeroOptimizer::step(float* params, float* grads, float lr, float clip) {
  opt_.step(params, grads, lr, clip);
  comm_.allgather(params, count_);
}

AdamW ZeroOptimizer::full_state() const {
  AdamW full(layout_, hp_);
  std::copy_n(opt_.m(), shard_.count, full.m() + shard_.offset);
  std::copy_n(opt_.v(), shard_.count, full.v() + shard_.offset);
  comm_.allgather(full.m(), count_);
  comm_.allgather(full.v(), count_);
  full.set_step_count(opt_.step_count());
  return full;
}

void ZeroOptimizer::load_full_state(const AdamW& full) {
  LOOM_CHECK(full.begin() == 0 && full.end() == count_,
             "ZeRO: a full optimizer state must cover all ", count_, " parameters");
  std::copy_n(full.m() + shard_.offset, shard_.count, opt_.m());
  std::copy_n(full.v() + shard_.offset, shard_.count, opt_.v());
  opt_.set_step_count(full.step_count());
}

}  // namespace loom::parallel
