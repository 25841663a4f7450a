#pragma once
// ZeRO-3's parameter storage: a data-parallel rank keeps only its block of each parameter
// partition (comm::block_of, as ZeroOptimizer and the reduce-scatters cut them) and gathers a
// unit's whole parameters into a working buffer just before the executors run it. It is the
// model's ParamGather (GPT::bind_params); the partitions are GPT::backward's slices
// (backward_slices: the embedding, each block, ln_f), which are also ZeRO-3's gradient buckets
// and moment partitions, so parameters, gradients and moments are sharded alike.
//
// Working buffers, allocated once (no allocation per step):
//   ends     wte, wpe and ln_f: the embedding and ln_f with the LM head, which is tied to wte.
//            Gathered before the first forward after an optimizer step and kept until the next
//            step (every micro-batch's embedding, head and head backward read it).
//   blocks   two buffers of the largest block's size; block b lives in buffer b mod 2. While
//            block b computes, the gather of the block the executor names next (b + 1 in
//            forward, b - 1 in backward) runs on the comm thread (Communicator::run_async) into
//            the other buffer, whose block is done.
// A buffer remembers the block it holds, so the last two blocks of a forward are not gathered
// again for its backward, nor the first two blocks of a backward for the next micro-batch's
// forward.
// ZeroOptimizer::step_shard updates the shard; invalidate() then marks every buffer stale. The
// first use() of a freshly gathered buffer starts a new weight generation of the bf16 matmuls
// (kernels::new_weight_generation): their cached bf16 copies are keyed by address, and the
// address held another unit's weights before.
// Parameter bytes per rank: n / world (the shard) + ends + 2 x the largest block, instead of n.
// Collective over the data-parallel group: every rank gathers the same units in the same order.
#include <array>
#include <cstddef>
#include <memory>
#include <vector>

#include "loom/comm/communicator.hpp"
#include "loom/core/aligned_buffer.hpp"
#include "loom/model/param_gather.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/parallel/zero_optimizer.hpp"

namespace loom::parallel {

class Zero3Params : public ParamGather {
 public:
  // layout: the model's; it must have the embedding, at least one block and ln_f (pp 1).
  // The shard starts at zero: load() fills it.
  Zero3Params(comm::Communicator& comm, const std::vector<ParamInfo>& layout);
  Zero3Params(const Zero3Params&) = delete;
  Zero3Params& operator=(const Zero3Params&) = delete;
  ~Zero3Params() override;

  // The partitions (backward_slices of the layout), in buffer order.
  const std::vector<FlatRange>& partitions() const { return units_; }
  // Where each layout tensor is read (for GPT::bind_params): in the ends buffer or in its
  // block's working buffer.
  const std::vector<float*>& storage() const { return storage_; }

  void use(int unit, int next) override;

  // This rank's parameters, one pointer per partition (ZeroOptimizer::shard_ranges order).
  ZeroOptimizer::Shard shard();
  // The shard has changed (optimizer step, load): every working buffer is stale.
  void invalidate();
  // Keeps this rank's blocks of `params`, the whole flat buffer laid out by the layout.
  void load(const float* params);
  // Collective: out[0, p.numel) <- tensor p of the layout, from every rank's shard (a checkpoint
  // gathers one tensor at a time).
  void gather_tensor(const ParamInfo& p, float* out) const;

  // Bytes of parameter memory this rank holds: the shard and the working buffers.
  size_t bytes() const;
  // The same, from the layout alone (for `loom memory`).
  static size_t planned_bytes(const std::vector<ParamInfo>& layout, int world, int rank);
  // Since construction: seconds spent waiting for gathers, the gathers started, and those
  // already complete when waited for (hidden under compute).
  double wait_seconds() const { return wait_seconds_; }
  long gathers() const { return gathers_; }
  long hidden_gathers() const { return hidden_; }

 private:
  static constexpr int kEndsSlot = 2;  // slots 0 and 1: the block buffers
  struct Part {
    comm::Block mine;      // this rank's block of the partition
    size_t shard_offset;   // where it lives in shard_
    float* working;        // where the whole partition is gathered
  };
  struct Sizes {
    size_t shard = 0, ends = 0, block = 0;
    size_t bytes() const { return (shard + ends + 2 * block) * sizeof(float); }
  };
  static Sizes sizes(const std::vector<FlatRange>& units, int world, int rank);
  int slot(int unit) const { return unit == kEnds ? kEndsSlot : unit % 2; }
  // The partitions of a unit: block b is partition b + 1; the ends the first and the last.
  std::vector<size_t> parts_of(int unit) const;
  void start(int unit);  // begins gathering `unit` into its slot (nothing if already there)
  void wait(int slot);

  comm::Communicator& comm_;
  std::vector<FlatRange> units_;
  Sizes sizes_;
  AlignedBuffer<float> shard_, ends_;
  std::array<AlignedBuffer<float>, 2> blocks_;
  std::vector<Part> parts_;
  std::vector<float*> storage_;
  std::array<int, 3> holds_;  // the unit each slot holds or is gathering (kNone: stale)
  std::array<bool, 3> fresh_{};  // gathered since its unit's last use()
  std::array<std::vector<std::unique_ptr<comm::Work>>, 3> work_;  // gathers in flight per slot
  double wait_seconds_ = 0;
  long gathers_ = 0;
  long hidden_ = 0;
};

}  // namespace loom::parallel
