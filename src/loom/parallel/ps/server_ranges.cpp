#include "loom/parallel/ps/server_ranges.hpp"

#include <algorithm>

#include "loom/core/check.hpp"

namespace loom::ps {

std::vector<ParamRange> server_ranges(size_t num_params, int servers) {
  LOOM_CHECK(servers >= 1 && static_cast<size_t>(servers) <= num_params, "ps: ", servers,
             " servers cannot share ", num_params, " parameters");
  std::vector<ParamRange> out(servers);
  for (int s = 0; s < servers; ++s)
    out[s] = {num_params * s / servers, num_params * (s + 1) / servers};
  return out;
}

std::vector<ParamInfo> range_layout(const std::vector<ParamInfo>& layout, ParamRange range) {
  std::vector<ParamInfo> out;
  for (const ParamInfo& p : layout) {
    const size_t b = std::max(p.offset, range.begin), e = std::min(p.offset + p.numel, range.end);
    if (b >= e) continue;
    ParamInfo piece = p;
    piece.offset = b - range.begin;
    piece.numel = e - b;
    piece.shape = {static_cast<int64_t>(e - b)};
    piece.full_shape.clear();
    piece.split = {};
    out.push_back(std::move(piece));
  }
  return out;
}

}  // namespace loom::ps
