#include "loom/parallel/tensor_parallel.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"
#include "loom/optim/grad_clip.hpp"

namespace loom::parallel {

void CommTensorParallelGroup::allreduce_sum(float* data, size_t n) {
  Timer t;
  comm_.allreduce(data, n, comm::ReduceOp::Sum);
  seconds_ += t.seconds();
  ++calls_;
}

template <typename T, typename Op>
void CommTensorParallelGroup::gather_reduce(T* data, size_t n, Op op) {
  Timer t;
  // Every rank's n values as floats' worth of bytes, in rank order.
  const size_t words = n * sizeof(T) / sizeof(float), ranks = comm_.size();
  static_assert(sizeof(T) % sizeof(float) == 0);
  scratch_.resize(words * ranks);
  std::memcpy(scratch_.data() + words * rank(), data, n * sizeof(T));
  comm_.allgather(scratch_.data(), scratch_.size());
  const T* all = reinterpret_cast<const T*>(scratch_.data());
  for (size_t i = 0; i < n; ++i) {
    T acc = all[i];
    for (size_t r = 1; r < ranks; ++r) acc = op(acc, all[r * n + i]);
    data[i] = acc;
  }
  seconds_ += t.seconds();
  ++calls_;
}

void CommTensorParallelGroup::allreduce_sum(double* data, size_t n) {
  gather_reduce(data, n, [](double a, double b) { return a + b; });
}
void CommTensorParallelGroup::allreduce_max(float* data, size_t n) {
  gather_reduce(data, n, [](float a, float b) { return std::max(a, b); });
}
void CommTensorParallelGroup::allreduce_max(double* data, size_t n) {
  gather_reduce(data, n, [](double a, double b) { return std::max(a, b); });
}

void CommTensorParallelGroup::reduce_scatter_sum(float* data, size_t n) {
  check_blocks(n);
  Timer t;
  comm_.reduce_scatter(data, n, comm::ReduceOp::Sum);
  seconds_ += t.seconds();
  ++calls_;
}
// The whole sum in rank order (the gradient checks' exact path); block rank() is part of it.
void CommTensorParallelGroup::reduce_scatter_sum(double* data, size_t n) {
  check_blocks(n);
  allreduce_sum(data, n);
}
void CommTensorParallelGroup::all_gather(float* data, size_t n) {
  check_blocks(n);
  Timer t;
  comm_.allgather(data, n);
  seconds_ += t.seconds();
  ++calls_;
}
// Block r of n doubles is block r of the 2n floats' worth of bytes (n a multiple of size()).
void CommTensorParallelGroup::all_gather(double* data, size_t n) {
  check_blocks(n);
  Timer t;
  comm_.allgather(reinterpret_cast<float*>(data), n * sizeof(double) / sizeof(float));
  seconds_ += t.seconds();
  ++calls_;
}

void CommTensorParallelGroup::check_blocks(size_t n) const {
  LOOM_CHECK(n % static_cast<size_t>(size()) == 0, "tensor parallel: ", n,
             " elements do not split into ", size(), " equal blocks");
}

namespace {

std::map<std::string, const ParamInfo*> by_name(const std::vector<ParamInfo>& layout) {
  std::map<std::string, const ParamInfo*> out;
  for (const auto& p : layout) out[p.name] = &p;
  return out;
}

}  // namespace

bool gather_whole_tensor(comm::Communicator& tp, const std::vector<ParamInfo>& local_layout,
                         const float* local, const ParamInfo& whole_p, float* whole) {
  std::fill(whole, whole + whole_p.numel, 0.0f);
  const auto p = std::find_if(local_layout.begin(), local_layout.end(),
                              [&](const ParamInfo& q) { return q.name == whole_p.name; });
  if (p == local_layout.end()) return false;  // on no rank of this tp group
  if (!p->replicated() || tp.rank() == 0) copy_to_whole(*p, local + p->offset, whole);
  // The pieces are disjoint, so the sum over the ranks assembles them exactly (x + 0 = x).
  if (tp.size() > 1) tp.allreduce(whole, whole_p.numel, comm::ReduceOp::Sum);
  return true;
}

void scatter_whole(const std::vector<ParamInfo>& local_layout, const float* whole,
                   const std::vector<ParamInfo>& whole_layout, float* local) {
  const auto at = by_name(whole_layout);
  for (const auto& p : local_layout) {
    const auto it = at.find(p.name);
    LOOM_CHECK(it != at.end(), "scatter_whole: ", p.name, " is not in the whole layout");
    copy_from_whole(p, whole + it->second->offset, local + p.offset);
  }
}

double sharded_grad_sq_sum(const float* grads, const std::vector<ParamInfo>& local_layout,
                           size_t begin, size_t end, bool count_replicated, size_t skip_begin,
                           size_t skip_end) {
  double sum = 0;
  for (const auto& p : local_layout) {
    if (p.replicated() && !count_replicated) continue;
    const size_t b = std::max(begin, p.offset), e = std::min(end, p.offset + p.numel);
    // The skipped range, relative to b (empty when it misses [b, e)).
    const size_t sb = std::clamp(skip_begin, b, e) - b, se = std::clamp(skip_end, b, e) - b;
    if (b < e) sum += loom::grad_sq_sum(grads + b, e - b, sb, std::max(sb, se));
  }
  return sum;
}

}  // namespace loom::parallel
