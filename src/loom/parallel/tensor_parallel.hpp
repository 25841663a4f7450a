#pragma once
// Tensor parallelism over the comm layer: the model's TensorParallelGroup implemented on a
// Communicator (the mesh's tp group), and the conversions between a rank's shards and whole
// Hugging Face tensors that make checkpoints layout-independent.
#include <cstddef>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/model/tp_group.hpp"

namespace loom::parallel {

// float sums go through the communicator's all-reduce (its algorithm: ring by default, which
// leaves the same bytes on every rank), and sequence parallelism's float reduce-scatter and
// all-gather through its reduce-scatter and all-gather. Max and double sums (gradient checks)
// all-gather every rank's values (moved as bytes, no arithmetic) and reduce them locally in rank
// order, so every rank computes the same result. Counts the time spent, for `loom bench tp`.
class CommTensorParallelGroup : public TensorParallelGroup {
 public:
  explicit CommTensorParallelGroup(comm::Communicator& comm) : comm_(comm) {}
  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  void allreduce_sum(float* data, size_t n) override;
  void allreduce_sum(double* data, size_t n) override;
  void allreduce_max(float* data, size_t n) override;
  void allreduce_max(double* data, size_t n) override;
  void reduce_scatter_sum(float* data, size_t n) override;
  void reduce_scatter_sum(double* data, size_t n) override;
  void all_gather(float* data, size_t n) override;
  void all_gather(double* data, size_t n) override;

  double seconds() const { return seconds_; }  // in the calls above, since construction / reset
  size_t calls() const { return calls_; }
  void reset_stats() { seconds_ = 0; calls_ = 0; }

 private:
  template <typename T, typename Op>
  void gather_reduce(T* data, size_t n, Op op);
  void check_blocks(size_t n) const;  // n splits into size() equal blocks

  comm::Communicator& comm_;
  double seconds_ = 0;
  size_t calls_ = 0;
  std::vector<float> scratch_;
};

// Collective over `tp` (when the tensor is held by this group): whole (whole_p.numel floats) <-
// the pieces of tensor whole_p.name in every tp rank's `local` (laid out by local_layout;
// replicated tensors come from tp rank 0). Every rank of `tp` ends with the whole tensor. A
// tensor none of them holds (another pipeline stage's) is zeros, without communication; returns
// whether the group holds it. A save gathers one tensor at a time: at most one extra tensor.
bool gather_whole_tensor(comm::Communicator& tp, const std::vector<ParamInfo>& local_layout,
                         const float* local, const ParamInfo& whole_p, float* whole);

// local <- this rank's pieces of the whole tensors (no communication); padding zeroed.
void scatter_whole(const std::vector<ParamInfo>& local_layout, const float* whole,
                   const std::vector<ParamInfo>& whole_layout, float* local);

// Sum of squares of grads[begin, end) (flat indices of local_layout), skipping the replicated
// tensors unless count_replicated: summed over the tp ranks with count_replicated on rank 0
// only, each sharded element counts once and each replicated one once, not tp times.
// grads[skip_begin, skip_end) are left out (as if zero).
double sharded_grad_sq_sum(const float* grads, const std::vector<ParamInfo>& local_layout,
                           size_t begin, size_t end, bool count_replicated,
                           size_t skip_begin = 0, size_t skip_end = 0);

}  // namespace loom::parallel
