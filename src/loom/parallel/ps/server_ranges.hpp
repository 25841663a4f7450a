#pragma once
// How the flat parameter buffer is spread over the parameter servers: server s of S holds the
// contiguous range [s * n / S, (s + 1) * n / S) of the n floats, so the servers are balanced by
// bytes and a large tensor may span servers (as MXNet's kvstore splits big arrays).
#include <cstddef>
#include <vector>

#include "loom/model/param_layout.hpp"

namespace loom::ps {

struct ParamRange {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
};

std::vector<ParamRange> server_ranges(size_t num_params, int servers);

// The tensors of `layout` clipped to `range`, with offsets relative to range.begin: an optimizer
// over [0, range.size()) of this layout updates exactly the range (weight decay where the whole
// tensor has it).
std::vector<ParamInfo> range_layout(const std::vector<ParamInfo>& layout, ParamRange range);

}  // namespace loom::ps
