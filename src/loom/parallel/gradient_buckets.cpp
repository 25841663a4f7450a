#include "loom/parallel/gradient_buckets.hpp"

#include <algorithm>

#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"
#include "loom/kernels/cpu/bf16.hpp"
#include "loom/kernels/cpu/parallel.hpp"

namespace loom::parallel {

GradientBuckets::GradientBuckets(comm::Communicator& comm, float* grads, size_t count,
                                 size_t bucket_bytes, comm::DType wire)
    : comm_(comm), grads_(grads), count_(count), wire_(wire) {
  LOOM_CHECK(bucket_bytes > 0, "gradient buckets: the bucket size must be > 0");
  if (wire_ == comm::DType::BF16) staging_.resize(count);
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
    const size_t n = b.end - b.begin;
    void* data = grads_ + b.begin;
    if (wire_ == comm::DType::BF16) {
      kernels::convert_to_bf16(staging_.data() + b.begin, grads_ + b.begin, 1, n, n);
      data = staging_.data() + b.begin;
    }
    work_.push_back(
        comm_.run_async({comm::OpKind::AllReduce, data, n, wire_, comm::ReduceOp::Avg}));
  }
}

double GradientBuckets::finish() {
  frontier_ = 0;  // backward is over: everything is final
  launch_ready();
  Timer wait;
  for (auto& w : work_) w->wait();
  work_.clear();
  if (wire_ == comm::DType::BF16) {
    const uint16_t* h = staging_.data();
#pragma omp parallel for schedule(static) if (kernels::worth_threads(count_))
    for (size_t i = 0; i < count_; ++i) grads_[i] = kernels::from_bf16(h[i]);
  }
  return wait.seconds();
}

}  // namespace loom::parallel
