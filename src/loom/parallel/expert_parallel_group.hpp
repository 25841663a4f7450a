#pragma once
// model/moe's ExpertParallelGroup over a Communicator (the ranks that split the experts between
// them): the all-to-alls are the communicator's pairwise all-to-all, under its timeout.
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

 private:
  comm::Communicator& comm_;
  std::vector<size_t> send_words_, recv_words_;  // counts in f32 words, for doubles
};

}  // namespace loom::parallel
