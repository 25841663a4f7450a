#include "loom/comm/algorithms/algorithms.hpp"
#include "loom/comm/reduce.hpp"

namespace loom::comm::algorithms {

std::byte* element_ptr(const Collective& c, size_t index) {
  return static_cast<std::byte*>(c.data) + index * dtype_size(c.dtype);
}

std::span<const std::byte> element_span(const Collective& c, size_t index, size_t count) {
  return {element_ptr(c, index), count * dtype_size(c.dtype)};
}

Sink reduce_sink(const Collective& c, size_t first_element) {
  std::byte* base = element_ptr(c, first_element);
  const DType dtype = c.dtype;
  const size_t es = dtype_size(dtype);
  return [base, dtype, es](const std::byte* data, size_t offset, size_t len) {
    sum_into(base + offset, data, len / es, dtype);
  };
}

Sink copy_sink_at(const Collective& c, size_t first_element) {
  return copy_sink(element_ptr(c, first_element));
}

void finish_reduction(const Collective& c, size_t first, size_t count, int group_size) {
  if (c.op == ReduceOp::Avg && group_size > 1)
    scale(element_ptr(c, first), count, c.dtype, 1.0f / static_cast<float>(group_size));
}

void barrier(Transport& t) {
  const int n = t.size(), r = t.rank();
  const std::byte token{1};
  std::byte got{};
  for (int k = 1; k < n; k *= 2)
    t.sendrecv_into((r + k) % n, {&token, 1}, (r - k + n) % n, &got, 1);
}

}  // namespace loom::comm::algorithms
