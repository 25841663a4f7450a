#pragma once
// Gradient buckets for data parallelism (PyTorch DDP's scheme over Loom's flat gradient buffer).
// The buffer is cut into buckets of about bucket_bytes, planned from its end: backward finishes
// gradients in reverse layout order (ln_f, h.L-1, ..., h.0, wpe/wte), so the last bucket fills
// first. During the last backward of a step, GPT::backward's on_ready(begin, end) callbacks move
// a frontier (everything at or above it is final); each bucket entirely above the frontier is
// averaged over the ranks asynchronously right away, while backward computes the earlier layers.
// finish() launches what is left and waits for all of them. (ZeRO-2 reduce-scatters its buckets
// out of a small pool instead of a flat buffer: sharded_gradients.hpp.)
// On the wire the gradients are f32, or, optionally, bf16: each bucket is rounded to bf16 into a
// staging buffer when it is launched and all-reduced there (each hop sums in f32), and finish()
// writes the averages back as f32 — half the bytes moved, for gradients rounded to 8 bits of
// mantissa.
#include <cstddef>
#include <memory>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/aligned_buffer.hpp"

namespace loom::parallel {

class GradientBuckets {
 public:
  // `grads` (count floats) must outlive this object; bucket_bytes > 0; wire: F32 or BF16.
  GradientBuckets(comm::Communicator& comm, float* grads, size_t count, size_t bucket_bytes,
                  comm::DType wire = comm::DType::F32);

  // Starts a step's last backward: nothing is final yet.
  void begin();
  // grads[begin, end) is final (the GPT::backward callback).
  void on_ready(size_t begin, size_t end);
  // Launches the buckets not yet launched, waits for every bucket; afterwards every rank holds
  // the average of all ranks' gradients. Returns the
  // seconds spent waiting: the communication time that backward did not hide.
  double finish();

  struct Bucket {
    size_t begin, end;
  };
  // From the end of the buffer to its start.
  const std::vector<Bucket>& buckets() const { return buckets_; }
  size_t num_buckets() const { return buckets_.size(); }

 private:
  void launch_ready();

  comm::Communicator& comm_;
  float* grads_;
  size_t count_;
  comm::DType wire_;
  AlignedBuffer<uint16_t> staging_;  // bf16 on the wire: the gradients being all-reduced
  std::vector<Bucket> buckets_;
  size_t frontier_ = 0;          // grads_[frontier_, count_) is final
  size_t launched_ = 0;          // buckets_[0, launched_) are in flight
  std::vector<std::unique_ptr<comm::Work>> work_;
};

}  // namespace loom::parallel
