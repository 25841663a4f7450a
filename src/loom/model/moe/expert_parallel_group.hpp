#pragma once
// The expert-parallel ranks of an MoE layer, as the layer sees them: the only way expert
// parallelism communicates (as tp_group.hpp is for tensor parallelism). The model does not know
// the comm backends: parallel/expert_parallel_group implements this over a Communicator's
// all-to-all, so the layer can be checked in double precision. A layer run without a group is
// ep 1: every expert on this rank, no communication.
//
// Every call is collective over the group, in the same order on every rank.
#include <cstddef>
#include <cstdint>
#include <span>

namespace loom::moe {

class ExpertParallelGroup {
 public:
  virtual ~ExpertParallelGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // send[p*n, (p+1)*n) goes to rank p; recv[p*n, (p+1)*n) comes from rank p.
  virtual void all_to_all(const int32_t* send, int32_t* recv, size_t n) = 0;
  // Pieces of any size packed in rank order: send_counts[p] elements of send go to rank p,
  // recv_counts[p] elements come from rank p (what p sends this rank).
  virtual void all_to_all_v(const float* send, std::span<const size_t> send_counts, float* recv,
                            std::span<const size_t> recv_counts) = 0;
  virtual void all_to_all_v(const double* send, std::span<const size_t> send_counts, double* recv,
                            std::span<const size_t> recv_counts) = 0;
};

}  // namespace loom::moe
