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
                             const AdamWParams& hp, std::vector<FlatRange> partitions)
    : comm_(comm), layout_(layout), hp_(hp), count_(total_params(layout)) {
  if (partitions.empty()) partitions.push_back({0, count_});
  std::sort(partitions.begin(), partitions.end(),
            [](const FlatRange& a, const FlatRange& b) { return a.begin < b.begin; });
  size_t covered = 0;
  for (const FlatRange& p : partitions) {
    LOOM_CHECK(p.begin == covered && p.begin <= p.end, "ZeRO: partitions must tile [0, ", count_,
               ") without gaps or overlaps");
    covered = p.end;
    const comm::Block b = comm::block_of(p.end - p.begin, comm.size(), comm.rank());
    parts_.push_back({p, AdamW(layout, hp, p.begin + b.offset, p.begin + b.offset + b.count)});
  }
  LOOM_CHECK(covered == count_, "ZeRO: partitions must tile [0, ", count_, ")");
}

void ZeroOptimizer::reduce_gradients(float* grads) {
  for (const Part& p : parts_) {
    comm_.reduce_scatter(grads + p.range.begin, p.range.end - p.range.begin, comm::ReduceOp::Avg);
  }
}

double ZeroOptimizer::grad_sq_sum(const float* grads) {
  double local = 0;
  for (const FlatRange& r : shard_ranges()) {
    local += loom::grad_sq_sum(grads + r.begin, r.end - r.begin);
  }
  return allreduce_sum(comm_, local);
}

void ZeroOptimizer::step(float* params, float* grads, float lr, float clip) {
  for (Part& p : parts_) {
    p.opt.step(params, grads, lr, clip);
    comm_.allgather(params + p.range.begin, p.range.end - p.range.begin);
  }
}

AdamW ZeroOptimizer::full_state() const {
  AdamW full(layout_, hp_);
  for (const Part& p : parts_) {
    const size_t n = p.opt.end() - p.opt.begin();
    std::copy_n(p.opt.m(), n, full.m() + p.opt.begin());
    std::copy_n(p.opt.v(), n, full.v() + p.opt.begin());
    comm_.allgather(full.m() + p.range.begin, p.range.end - p.range.begin);
    comm_.allgather(full.v() + p.range.begin, p.range.end - p.range.begin);
  }
  full.set_step_count(parts_.front().opt.step_count());
  return full;
}

void ZeroOptimizer::load_full_state(const AdamW& full) {
  LOOM_CHECK(full.begin() == 0 && full.end() == count_,
             "ZeRO: a full optimizer state must cover all ", count_, " parameters");
  for (Part& p : parts_) {
    const size_t n = p.opt.end() - p.opt.begin();
    std::copy_n(full.m() + p.opt.begin(), n, p.opt.m());
    std::copy_n(full.v() + p.opt.begin(), n, p.opt.v());
    p.opt.set_step_count(full.step_count());
  }
}

std::vector<FlatRange> ZeroOptimizer::shard_ranges() const {
  std::vector<FlatRange> out;
  for (const Part& p : parts_) out.push_back({p.opt.begin(), p.opt.end()});
  return out;
}

}  // namespace loom::parallel
