#pragma once
// model/moe's ExpertParallelGroup over a Communicator (the ranks that split the experts between
// them): the all-to-alls are the communicator's pairwise all-to-all, under its timeout. It counts
// what its all-to-alls moved (for `loom bench moe`).
#include "loom/comm/communicator.hpp"
#include "loom/model/moe/expert_parallel_group.hpp"

namespace loom::parallel {

class CommExpertParallelGroup : public moe::ExpertParallelGroup {
 public:
  explicit CommExpertParallelGroup(comm::Communicator& comm) : comm_(comm) {}
  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  void all_to_all(const int32_t* send, int32_t* recv, size_t n) override;
  void all_to_all_v(const float* send, std::span<const size_t> send_counts, float* recv,
                    std::span<const size_t> recv_counts) override;
  void all_to_all_v(const double* send, std::span<const size_t> send_counts, double* recv,
                    std::span<const size_t> recv_counts) override;

  // Since construction: bytes this rank sent to the other ranks (its own piece stays here) and
  // seconds spent in the all-to-alls (waiting for the slowest rank included).
  struct Traffic {
    size_t bytes_sent = 0;
    double seconds = 0;
  };
  const Traffic& traffic() const { return traffic_; }

 private:
  // Adds one all-to-all's bytes to other ranks (`counts` elements of `elem_bytes` per rank).
  void count(std::span<const size_t> counts, size_t elem_bytes);
  comm::Communicator& comm_;
  std::vector<size_t> send_words_, recv_words_;  // counts in f32 words, for doubles
  Traffic traffic_;
};

}  // namespace loom::parallel
