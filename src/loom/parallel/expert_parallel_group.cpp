#include "loom/parallel/expert_parallel_group.hpp"

#include "loom/core/timer.hpp"

namespace loom::parallel {

// The all-to-all moves bytes without arithmetic: int32 and double travel as f32 words.
static_assert(sizeof(int32_t) == sizeof(float) && sizeof(double) == 2 * sizeof(float));

void CommExpertParallelGroup::count(std::span<const size_t> counts, size_t elem_bytes) {
  for (size_t p = 0; p < counts.size(); ++p)
    if (static_cast<int>(p) != comm_.rank()) traffic_.bytes_sent += counts[p] * elem_bytes;
}

void CommExpertParallelGroup::all_to_all(const int32_t* send, int32_t* recv, size_t n) {
  const Timer t;
  comm_.all_to_all(reinterpret_cast<const float*>(send), reinterpret_cast<float*>(recv), n);
  traffic_.seconds += t.seconds();
  traffic_.bytes_sent += (static_cast<size_t>(comm_.size()) - 1) * n * sizeof(int32_t);
}

void CommExpertParallelGroup::all_to_all_v(const float* send, std::span<const size_t> send_counts,
                                           float* recv, std::span<const size_t> recv_counts) {
  const Timer t;
  comm_.all_to_all_v(send, send_counts, recv, recv_counts);
  traffic_.seconds += t.seconds();
  count(send_counts, sizeof(float));
}

void CommExpertParallelGroup::all_to_all_v(const double* send, std::span<const size_t> send_counts,
                                           double* recv, std::span<const size_t> recv_counts) {
  send_words_.resize(send_counts.size());
  recv_words_.resize(recv_counts.size());
  for (size_t p = 0; p < send_counts.size(); ++p) send_words_[p] = 2 * send_counts[p];
  for (size_t p = 0; p < recv_counts.size(); ++p) recv_words_[p] = 2 * recv_counts[p];
  const Timer t;
  comm_.all_to_all_v(reinterpret_cast<const float*>(send), send_words_,
                     reinterpret_cast<float*>(recv), recv_words_);
  traffic_.seconds += t.seconds();
  count(send_counts, sizeof(double));
}

}  // namespace loom::parallel
