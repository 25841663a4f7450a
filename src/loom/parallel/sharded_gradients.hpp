#pragma once
// ZeRO-2's gradient storage: a rank holds only its shard of the averaged gradient, plus a few
// bucket buffers that backward writes into and that are reduce-scattered while backward goes on.
//
// The model's flat gradient buffer is replaced (GPT::bind_gradients) by:
//   bucket pool   kPoolBuffers buffers, each of its largest bucket's size. The blocks and ln_f
//                 are cut into buckets of about bucket_bytes, planned from the end of the buffer
//                 in whole backward slices (ln_f and one block each: what GPT::backward reports
//                 through on_ready at a time), so each slice is written into one bucket. Bucket k
//                 (in backward order) lives in pool buffer k mod kPoolBuffers: when k is finished
//                 its reduce-scatter is queued on the comm thread, and before backward writes into
//                 bucket k + kPoolBuffers, the reduce-scatter of k is awaited, this rank's block
//                 of it is added to the shard, and the buffer is zeroed (backward accumulates).
//   embedding     wte and wpe (the prefix of the buffer) in a buffer of their own: the tied wte is
//                 written first (LM head) and last (embedding) in one backward, so it is live for
//                 the whole backward.
//   shard         this rank's block of every pooled bucket, summed over the step's micro-batches
//                 (each backward reduce-scatters its pooled buckets).
// A bucket whose buffer no other bucket uses (the embedding; every bucket when there are at most
// kPoolBuffers) is resident: it sums a step's micro-batches in place as the flat buffer did, is
// reduce-scattered once, in the step's last backward, and this rank's block of it stays there as
// its shard. The buckets are the partitions of ZeroOptimizer, so shard() is exactly what its step
// needs. Gradient bytes per rank: pool + embedding + (pooled buckets / world) instead of the
// whole buffer. Collectives run in the same order on every rank.
#include <cstddef>
#include <memory>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/aligned_buffer.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/parallel/zero_optimizer.hpp"

namespace loom::parallel {

// The slices GPT::backward reports through on_ready, in buffer order: the embedding (wte, wpe:
// everything before the first block), each block, ln_f.
std::vector<FlatRange> backward_slices(const std::vector<ParamInfo>& layout);

class ShardedGradients {
 public:
  static constexpr int kPoolBuffers = 2;  // one written by backward while one is reduced

  // layout: the model's (its shard's) parameter layout; bucket_bytes > 0.
  ShardedGradients(comm::Communicator& comm, const std::vector<ParamInfo>& layout,
                   size_t bucket_bytes);
  ShardedGradients(const ShardedGradients&) = delete;
  ShardedGradients& operator=(const ShardedGradients&) = delete;

  // Where each layout tensor's gradient lives (for GPT::bind_gradients). Pool tensors share
  // memory: only the bucket backward is writing is meaningful at a time.
  const std::vector<float*>& storage() const { return storage_; }
  // The partitions for ZeroOptimizer: every bucket and the embedding, in any order.
  std::vector<FlatRange> partitions() const;

  // Starts a backward (every micro-batch of a step; `last`: the step's last, which also reduces
  // the embedding). Finishes the previous backward's reductions first.
  void begin_backward(bool last);
  // The GPT::backward callback: layout range [begin, end) is final.
  void on_ready(size_t begin, size_t end);
  // Launches what is left, waits for every reduce-scatter and adds this rank's blocks into the
  // shard. Returns the seconds spent waiting.
  double finish();
  // This rank's averaged gradient, one pointer per ZeroOptimizer partition (shard_ranges order),
  // after the step's last backward and finish().
  ZeroOptimizer::Shard shard();
  // The optimizer step has used the shard: the next backward starts a new sum.
  void clear();

  // Bytes of gradient memory this rank holds (pool, embedding buffer, shard).
  size_t bytes() const;
  // The same, computed from the plan alone (for `loom memory`).
  static size_t planned_bytes(const std::vector<ParamInfo>& layout, size_t bucket_bytes,
                              int world, int rank);

 private:
  struct Bucket {
    size_t begin, end;     // layout range
    int buffer;            // index into buffers_
    size_t at;             // its offset in that buffer
    bool resident;         // the only bucket of its buffer
    comm::Block mine;      // this rank's block of it (offsets from begin)
    size_t shard_offset;   // where that block is summed in shard_ (pooled buckets)
    bool summed;           // its shard holds this step's gradient so far (since clear())
  };
  struct Plan {
    std::vector<Bucket> buckets;
    std::vector<size_t> buffer_elems;  // the pool buffers, then the embedding's
    size_t shard_elems = 0;
    size_t bytes() const;
  };
  static Plan plan(const std::vector<ParamInfo>& layout, size_t bucket_bytes, int world, int rank);
  float* data(const Bucket& b) { return buffers_[b.buffer].data() + b.at; }
  void prepare(size_t k);  // bucket k's buffer is about to be written by backward
  void launch_ready();
  void retire(size_t k);   // waits for bucket k's reduce-scatter and keeps this rank's block

  comm::Communicator& comm_;
  size_t count_;
  Plan plan_;
  std::vector<Bucket>& buckets_;  // plan_'s, in backward order: from the end, embedding last
  std::vector<AlignedBuffer<float>> buffers_;
  AlignedBuffer<float> shard_;
  std::vector<float*> storage_;
  bool active_ = false;  // a backward began and finish() has not run yet
  bool last_ = false;
  size_t frontier_ = 0;  // [frontier_, count_) is final in this backward
  size_t launched_ = 0;  // buckets_[0, launched_) are done being written
  size_t prepared_ = 0;  // buckets_[0, prepared_) had their buffer made ready
  std::vector<std::unique_ptr<comm::Work>> work_;  // per bucket; null when none is in flight
};

}  // namespace loom::parallel
