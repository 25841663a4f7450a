#pragma once
// The tensor-parallel ranks of one model replica, as the model sees them: the only way tensor
// parallelism communicates. The model does not know the comm backends (parallel/tensor_parallel
// implements this over a Communicator), so tests can run it in double precision. A model built
// without a group is tp 1 and runs exactly the single-rank code path.
//
// Every call is collective over the group, in the same order on every rank, and leaves the same
// bytes on every rank (the replicated tensors' gradients rely on it).
#include <cstddef>

namespace loom {

class TensorParallelGroup {
 public:
  virtual ~TensorParallelGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // data[0, n) <- elementwise sum (max) over the ranks.
  virtual void allreduce_sum(float* data, size_t n) = 0;
  virtual void allreduce_sum(double* data, size_t n) = 0;
  virtual void allreduce_max(float* data, size_t n) = 0;
  virtual void allreduce_max(double* data, size_t n) = 0;
  // Sequence parallelism, in place over blocks of n / size() elements (n a multiple of size()):
  // reduce_scatter_sum leaves block rank() of data summed over the ranks (the other blocks are
  // unspecified afterwards); all_gather fills every block with that rank's block rank().
  virtual void reduce_scatter_sum(float* data, size_t n) = 0;
  virtual void reduce_scatter_sum(double* data, size_t n) = 0;
  virtual void all_gather(float* data, size_t n) = 0;
  virtual void all_gather(double* data, size_t n) = 0;
};

// A group that does not communicate: it stands for rank `rank` of `size` so that a model runs its
// tp code path and plans its tp-split buffers alone (sizes and kernel warm-up, not values).
class ShapesOnlyTpGroup : public TensorParallelGroup {
 public:
  ShapesOnlyTpGroup(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float*, size_t) override {}
  void allreduce_sum(double*, size_t) override {}
  void allreduce_max(float*, size_t) override {}
  void allreduce_max(double*, size_t) override {}
  void reduce_scatter_sum(float*, size_t) override {}
  void reduce_scatter_sum(double*, size_t) override {}
  void all_gather(float*, size_t) override {}
  void all_gather(double*, size_t) override {}

 private:
  int rank_, size_;
};

}  // namespace loom
