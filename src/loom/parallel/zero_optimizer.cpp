#include "loom/parallel/zero_optimizer.hpp"

#include <algorithm>

#include "loom/core/check.hpp"
#include "loom/optim/grad_clip.hpp"
#include "loom/parallel/replica_check.hpp"
#include "loom/parallel/tensor_parallel.hpp"

namespace loom::parallel {
namespace {

size_t total_params(const std::vector<ParamInfo>& layout) {
  return layout.empty() ? 0 : layout.back().offset + layout.back().numel;
}

// The pieces of layout's tensors inside [begin, end), with offsets counted from begin: the
// layout of a gradient shard stored on its own.
std::vector<ParamInfo> layout_of_range(const std::vector<ParamInfo>& layout, size_t begin,
                                       size_t end) {
  std::vector<ParamInfo> out;
  for (const ParamInfo& p : layout) {
    const size_t b = std::max(begin, p.offset), e = std::min(end, p.offset + p.numel);
    if (b >= e) continue;
    ParamInfo piece = p;
    piece.offset = b - begin;
    piece.numel = e - b;
    piece.shape = {static_cast<int64_t>(e - b)};
    out.push_back(std::move(piece));
  }
  return out;
}

}  // namespace

ZeroOptimizer::ZeroOptimizer(comm::Communicator& comm, const std::vector<ParamInfo>& layout,
                             const AdamWParams& hp, std::vector<FlatRange> partitions)
    : comm_(comm), count_(total_params(layout)) {
  if (partitions.empty()) partitions.push_back({0, count_});
  std::sort(partitions.begin(), partitions.end(),
            [](const FlatRange& a, const FlatRange& b) { return a.begin < b.begin; });
  size_t covered = 0;
  for (const FlatRange& p : partitions) {
    LOOM_CHECK(p.begin == covered && p.begin <= p.end, "ZeRO: partitions must tile [0, ", count_,
               ") without gaps or overlaps");
    covered = p.end;
    const comm::Block b = comm::block_of(p.end - p.begin, comm.size(), comm.rank());
    const FlatRange mine{p.begin + b.offset, p.begin + b.offset + b.count};
    auto piece_layout = layout_of_range(layout, mine.begin, mine.end);
    AdamW opt(piece_layout, hp, 0, mine.end - mine.begin);
    parts_.push_back({p, mine, std::move(piece_layout), std::move(opt)});
  }
  LOOM_CHECK(covered == count_, "ZeRO: partitions must tile [0, ", count_, ")");
}

void ZeroOptimizer::reduce_gradients(float* grads) {
  for (const Part& p : parts_) {
    comm_.reduce_scatter(grads + p.range.begin, p.range.end - p.range.begin, comm::ReduceOp::Avg);
  }
}

double ZeroOptimizer::grad_sq_sum(const Shard& shard, bool count_replicated, FlatRange skip) {
  LOOM_CHECK(shard.size() == parts_.size(), "ZeRO: ", shard.size(), " gradient blocks for ",
             parts_.size(), " partitions");
  double local = 0;
  for (size_t k = 0; k < parts_.size(); ++k) {
    const Part& p = parts_[k];
    const size_t n = p.mine.end - p.mine.begin;
    // `skip` relative to mine.begin (empty when it misses this block).
    const size_t sb = std::clamp(skip.begin, p.mine.begin, p.mine.end) - p.mine.begin;
    const size_t se = std::max(sb, std::clamp(skip.end, p.mine.begin, p.mine.end) - p.mine.begin);
    local += count_replicated ? loom::grad_sq_sum(shard[k], n, sb, se)
                              : sharded_grad_sq_sum(shard[k], p.layout, 0, n, false, sb, se);
  }
  return allreduce_sum(comm_, local);
}

void ZeroOptimizer::step(float* params, const Shard& shard, float lr, float clip) {
  LOOM_CHECK(shard.size() == parts_.size(), "ZeRO: ", shard.size(), " gradient blocks for ",
             parts_.size(), " partitions");
  for (size_t k = 0; k < parts_.size(); ++k) {
    Part& p = parts_[k];
    p.opt.step(params + p.mine.begin, shard[k], lr, clip);
    comm_.allgather(params + p.range.begin, p.range.end - p.range.begin);
  }
}

void ZeroOptimizer::step_shard(const Shard& params, const Shard& grads, float lr, float clip) {
  LOOM_CHECK(params.size() == parts_.size() && grads.size() == parts_.size(), "ZeRO: ",
             params.size(), " parameter and ", grads.size(), " gradient blocks for ",
             parts_.size(), " partitions");
  for (size_t k = 0; k < parts_.size(); ++k) parts_[k].opt.step(params[k], grads[k], lr, clip);
}

void ZeroOptimizer::gather_moments(bool second, FlatRange r, float* out) const {
  LOOM_CHECK(r.begin <= r.end && r.end <= count_, "ZeRO: moments of [", r.begin, ", ", r.end,
             ") outside the ", count_, " parameters");
  const size_t n = r.end - r.begin;
  std::fill_n(out, n, 0.0f);
  for (const Part& p : parts_) {
    const size_t begin = std::max(p.mine.begin, r.begin), end = std::min(p.mine.end, r.end);
    if (begin >= end) continue;
    const float* mine = (second ? p.opt.v() : p.opt.m()) + (begin - p.mine.begin);
    std::copy(mine, mine + (end - begin), out + (begin - r.begin));
  }
  // The ranks' blocks are disjoint, so their sum assembles the range exactly (x + 0 = x).
  comm_.allreduce(out, n);
}

void ZeroOptimizer::load_full_state(const AdamW& full) {
  LOOM_CHECK(full.begin() == 0 && full.end() == count_,
             "ZeRO: a full optimizer state must cover all ", count_, " parameters");
  for (Part& p : parts_) {
    const size_t n = p.mine.end - p.mine.begin;
    std::copy_n(full.m() + p.mine.begin, n, p.opt.m());
    std::copy_n(full.v() + p.mine.begin, n, p.opt.v());
    p.opt.set_step_count(full.step_count());
  }
}

std::vector<FlatRange> ZeroOptimizer::shard_ranges() const {
  std::vector<FlatRange> out;
  for (const Part& p : parts_) out.push_back(p.mine);
  return out;
}

}  // namespace loom::parallel
