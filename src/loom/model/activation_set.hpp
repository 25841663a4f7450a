#pragma once
// The activation memory a ChunkExecutor runs in, owned by its caller:
// - ActivationSet: what one forward leaves for its backward (one per micro-batch in flight).
//   A new set is empty; the first forward run on it allocates its buffers as activation_plan
//   sizes them, and later forwards reuse them (they grow only).
// - ActivationWorkspace: the backward's scratch, shared by every set of the executors that are
//   given it (a pipeline stage's chunks share one).
// Both move without copying their buffers.
#include <cstddef>
#include <memory>

namespace loom {

namespace gpt_internal {
template <typename T>
struct ActivationState;
template <typename T>
struct BackwardScratch;
}  // namespace gpt_internal

template <typename T>
class ChunkExecutor;

template <typename T>
class ActivationSet {
 public:
  ActivationSet();
  ~ActivationSet();
  ActivationSet(ActivationSet&&) noexcept;
  ActivationSet& operator=(ActivationSet&&) noexcept;

  // Bytes the set holds: what it keeps from its forward to its W (the blocks' linear layers'
  // inputs and outputs), plus its B-only buffers (stage input, statistics, attention
  // probabilities, masks, head tensors) while it holds them (from its forward to its B under a
  // split backward, for good otherwise).
  size_t bytes() const;
  // The logits' share of bytes() (as planned by the set's last forward).
  size_t logits_bytes() const;

 private:
  friend class ChunkExecutor<T>;
  std::unique_ptr<gpt_internal::ActivationState<T>> state_;
};

template <typename T>
class ActivationWorkspace {
 public:
  ActivationWorkspace();
  ~ActivationWorkspace();
  ActivationWorkspace(ActivationWorkspace&&) noexcept;
  ActivationWorkspace& operator=(ActivationWorkspace&&) noexcept;

  // Bytes of the backward's scratch.
  size_t bytes() const;
  // Activation buffers allocated so far by the executors given this workspace (their sets',
  // their pools', the scratch): buffers are reused and grow only, so this stays put once every
  // executor has run its largest batch.
  size_t allocations() const;

 private:
  friend class ChunkExecutor<T>;
  std::unique_ptr<gpt_internal::BackwardScratch<T>> scratch_;
};

extern template class ActivationSet<float>;
extern template class ActivationSet<double>;
extern template class ActivationWorkspace<float>;
extern template class ActivationWorkspace<double>;

}  // namespace loom
