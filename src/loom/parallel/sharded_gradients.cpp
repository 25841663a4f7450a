#include "loom/parallel/sharded_gradients.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <string>

#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"

namespace loom::parallel {
namespace {

// Where GPT::backward's on_ready slices begin: each block's first tensor and ln_f. Everything
// before the first of them is the embedding (wte, wpe).
std::set<size_t> slice_starts(const std::vector<ParamInfo>& layout) {
  const std::string first_of_block = ".ln_1.weight";
  std::set<size_t> starts;
  for (const ParamInfo& p : layout) {
    const std::string& n = p.name;
    const bool block_start =
        n.rfind("transformer.h.", 0) == 0 && n.size() > first_of_block.size() &&
        n.compare(n.size() - first_of_block.size(), first_of_block.size(), first_of_block) == 0;
    if (block_start || n == "transformer.ln_f.weight") starts.insert(p.offset);
  }
  return starts;
}

}  // namespace

std::vector<FlatRange> backward_slices(const std::vector<ParamInfo>& layout) {
  const size_t count = layout.empty() ? 0 : layout.back().offset + layout.back().numel;
  std::vector<FlatRange> out;
  size_t begin = 0;
  for (size_t start : slice_starts(layout)) {
    if (start > begin) out.push_back({begin, start});
    begin = start;
  }
  if (count > begin) out.push_back({begin, count});
  return out;
}

size_t ShardedGradients::Plan::bytes() const {
  size_t elems = shard_elems;
  for (size_t n : buffer_elems) elems += n;
  return elems * sizeof(float);
}

ShardedGradients::Plan ShardedGradients::plan(const std::vector<ParamInfo>& layout,
                                              size_t bucket_bytes, int world, int rank) {
  LOOM_CHECK(bucket_bytes > 0, "ZeRO-2: the bucket size must be > 0");
  const size_t count = layout.empty() ? 0 : layout.back().offset + layout.back().numel;
  const size_t target = std::max<size_t>(1, bucket_bytes / sizeof(float));
  const std::set<size_t> starts = slice_starts(layout);
  const size_t embedding_end = starts.empty() ? count : *starts.begin();
  Plan plan;
  // Whole slices from the end, until a bucket reaches the target size.
  size_t end = count;
  for (auto it = starts.rbegin(); it != starts.rend(); ++it) {
    if (end - *it < target && *it != embedding_end) continue;
    const int buffer = static_cast<int>(plan.buckets.size() % kPoolBuffers);
    if (plan.buffer_elems.size() <= static_cast<size_t>(buffer)) plan.buffer_elems.push_back(0);
    plan.buffer_elems[buffer] = std::max(plan.buffer_elems[buffer], end - *it);
    plan.buckets.push_back({*it, end, buffer, 0, false, comm::block_of(end - *it, world, rank),
                            0, false});
    end = *it;
  }
  const size_t pooled = plan.buckets.size();
  for (Bucket& b : plan.buckets) {
    b.resident = pooled <= static_cast<size_t>(kPoolBuffers);
    if (b.resident) continue;
    b.shard_offset = plan.shard_elems;
    plan.shard_elems += b.mine.count;
  }
  if (embedding_end > 0) {
    plan.buckets.push_back({0, embedding_end, static_cast<int>(plan.buffer_elems.size()), 0, true,
                            comm::block_of(embedding_end, world, rank), 0, false});
    plan.buffer_elems.push_back(embedding_end);
  }
  return plan;
}

size_t ShardedGradients::planned_bytes(const std::vector<ParamInfo>& layout, size_t bucket_bytes,
                                       int world, int rank) {
  return plan(layout, bucket_bytes, world, rank).bytes();
}

ShardedGradients::ShardedGradients(comm::Communicator& comm, const std::vector<ParamInfo>& layout,
                                   size_t bucket_bytes)
    : comm_(comm),
      count_(layout.empty() ? 0 : layout.back().offset + layout.back().numel),
      plan_(plan(layout, bucket_bytes, comm.size(), comm.rank())),
      buckets_(plan_.buckets),
      buffers_(plan_.buffer_elems.size()) {
  for (size_t i = 0; i < buffers_.size(); ++i) {
    buffers_[i].resize(plan_.buffer_elems[i]);
    std::fill_n(buffers_[i].data(), plan_.buffer_elems[i], 0.0f);
  }
  shard_.resize(plan_.shard_elems);
  work_.resize(buckets_.size());
  for (const ParamInfo& p : layout) {
    const auto b = std::find_if(buckets_.begin(), buckets_.end(), [&](const Bucket& b) {
      return b.begin <= p.offset && p.offset < b.end;
    });
    LOOM_CHECK(b != buckets_.end() && p.offset + p.numel <= b->end, "ZeRO-2: tensor ", p.name,
               " does not lie inside one gradient bucket");
    storage_.push_back(data(*b) + (p.offset - b->begin));
  }
}

std::vector<FlatRange> ShardedGradients::partitions() const {
  std::vector<FlatRange> out;
  for (const Bucket& b : buckets_) out.push_back({b.begin, b.end});
  return out;
}

size_t ShardedGradients::bytes() const { return plan_.bytes(); }

void ShardedGradients::begin_backward(bool last) {
  finish();
  active_ = true;
  last_ = last;
  frontier_ = count_;
  launched_ = prepared_ = 0;
  if (!buckets_.empty()) prepare(0);
}

void ShardedGradients::prepare(size_t k) {
  const Bucket& b = buckets_[k];
  // A resident bucket sums a step's micro-batches in place (GPT::zero_grad clears it).
  if (!b.resident) {
    if (k >= kPoolBuffers) retire(k - kPoolBuffers);  // the buffer's previous bucket
    std::memset(data(b), 0, (b.end - b.begin) * sizeof(float));
  }
  prepared_ = k + 1;
}

void ShardedGradients::on_ready(size_t begin, size_t end) {
  LOOM_CHECK(active_, "ZeRO-2: gradients reported outside a backward (begin_backward first)");
  LOOM_CHECK(begin <= end && end == frontier_, "ZeRO-2: slice [", begin, ", ", end,
             ") does not end at the frontier ", frontier_, " (backward order changed?)");
  // Backward wrote this slice into the buffer of the bucket prepared last; a slice reaching
  // below it was written into memory another bucket may still be using.
  LOOM_CHECK(prepared_ > 0 && begin >= buckets_[prepared_ - 1].begin, "ZeRO-2: slice [", begin,
             ", ", end, ") spans several gradient buckets (the buckets are planned from "
             "GPT::backward's slices: one block or ln_f at a time)");
  frontier_ = begin;
  launch_ready();
  if (frontier_ > 0 && prepared_ == launched_ && prepared_ < buckets_.size()) prepare(prepared_);
}

void ShardedGradients::launch_ready() {
  for (; launched_ < buckets_.size() && buckets_[launched_].begin >= frontier_; ++launched_) {
    const Bucket& b = buckets_[launched_];
    // A resident bucket is reduced once, in the step's last backward.
    if (b.resident && !last_) continue;
    work_[launched_] = comm_.run_async({comm::OpKind::ReduceScatter, data(b), b.end - b.begin,
                                        comm::DType::F32, comm::ReduceOp::Avg});
  }
}

void ShardedGradients::retire(size_t k) {
  if (!work_[k]) return;
  work_[k]->wait();
  work_[k].reset();
  Bucket& b = buckets_[k];
  if (b.resident) {
    b.summed = true;  // its block stays in its buffer
    return;
  }
  const float* src = data(b) + b.mine.offset;
  float* dst = shard_.data() + b.shard_offset;
  if (b.summed) {
    for (size_t i = 0; i < b.mine.count; ++i) dst[i] += src[i];
  } else {
    std::memcpy(dst, src, b.mine.count * sizeof(float));
    b.summed = true;
  }
}

double ShardedGradients::finish() {
  if (!active_) return 0;
  frontier_ = 0;  // backward is over: everything is final
  launch_ready();
  Timer wait;
  for (size_t k = 0; k < buckets_.size(); ++k) retire(k);
  active_ = false;
  return wait.seconds();
}

ZeroOptimizer::Shard ShardedGradients::shard() {
  LOOM_CHECK(!active_, "ZeRO-2: the gradient shard is read before finish()");
  // ZeroOptimizer's partitions in buffer order: the embedding, then the buckets from the start.
  ZeroOptimizer::Shard out;
  for (auto b = buckets_.rbegin(); b != buckets_.rend(); ++b) {
    LOOM_CHECK(b->summed, "ZeRO-2: no backward since the last step reduced bucket [", b->begin,
               ", ", b->end, ") (the step's last backward must be marked last)");
    out.push_back(b->resident ? data(*b) + b->mine.offset : shard_.data() + b->shard_offset);
  }
  return out;
}

void ShardedGradients::clear() {
  for (Bucket& b : buckets_) b.summed = false;
}

}  // namespace loom::parallel
