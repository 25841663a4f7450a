#include "loom/parallel/gradient_buckets.hpp"

#include <algorithm>

#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"

namespace loom::parallel {

GradientBuckets::GradientBuckets(comm::Communicator& comm, float* grads, size_t count,
                                 size_t bucket_bytes)
    : comm_(comm), grads_(grads), count_(count) {
  LOOM_CHECK(bucket_bytes > 0, "gradient buckets: the bucket size must be > 0");
  const size_t elems = std::max<size_t>(1, bucket_bytes / sizeof(float));
  for (size_t end = count; end > 0;) {
    const size_t begin = end > elems ? end - elems : 0;
    buckets_.push_back({begin, end});
    end = begin;
  }
  begin();
}

void GradientBuckets::begin() {
  LOOM_CHECK(work_.empty(), "gradient buckets: begin() while a step's all-reduces are in flight");
  frontier_ = count_;
  launched_ = 0;
}

void GradientBuckets::on_ready(size_t begin, size_t end) {
  LOOM_CHECK(begin <= end && end <= count_, "gradient buckets: slice [", begin, ", ", end,
             ") outside the ", count_, " gradients");
  // Slices arrive in reverse layout order and adjoin the frontier; a slice that does not would
  // leave a gap whose gradients are not final, so it must not move the frontier past the gap.
  LOOM_CHECK(end == frontier_, "gradient buckets: slice [", begin, ", ", end,
             ") does not end at the frontier ", frontier_, " (backward order changed?)");
  frontier_ = begin;
  launch_ready();
}

void GradientBuckets::launch_ready() {
  while (launched_ < buckets_.size() && buckets_[launched_].begin >= frontier_) {
    const Bucket& b = buckets_[launched_++];
    work_.push_back(comm_.run_async(
        {comm::OpKind::AllReduce, grads_ + b.begin, b.end - b.begin, comm::DType::F32, comm::ReduceOp::Avg}));
  }
}

double GradientBuckets::finish() {
  frontier_ = 0;  // backward is over: everything is final
  launch_ready();
  Timer wait;
  for (auto& w : work_) w->wait();
  work_.clear();
  return wait.seconds();
}

}  // namespace loom::parallel
