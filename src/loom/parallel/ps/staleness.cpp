#include "loom/parallel/ps/staleness.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace loom::ps {

int64_t StalenessHistogram::total() const {
  int64_t n = 0;
  for (const auto& [s, c] : counts_) n += c;
  return n;
}

nlohmann::json StalenessHistogram::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [s, c] : counts_) j[std::to_string(s)] = c;
  return j;
}

int ClockTable::active_count() const {
  return static_cast<int>(std::count(active_.begin(), active_.end(), true));
}

int64_t ClockTable::min_active_pushed() const {
  int64_t m = std::numeric_limits<int64_t>::max();
  for (size_t w = 0; w < pushed_.size(); ++w)
    if (active_[w]) m = std::min(m, pushed_[w]);
  return m == std::numeric_limits<int64_t>::max() ? 0 : m;
}

}  // namespace loom::ps
