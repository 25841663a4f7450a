#include "loom/parallel/pipeline/partition.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "loom/core/check.hpp"

namespace loom::pipeline {
namespace {

void check_stages(const PartCosts& c, int stages) {
  const int L = static_cast<int>(c.block.size());
  LOOM_CHECK(stages >= 1 && stages <= L, "pipeline: ", stages, " stages for ", L,
             " blocks (need 1 <= --pp x --virtual_stages <= n_layer)");
}

Partition with_costs(const PartCosts& c, std::vector<int> first) {
  Partition p;
  p.first = std::move(first);
  const int S = static_cast<int>(p.first.size()) - 1;
  for (int k = 0; k < S; ++k) {
    double x = std::accumulate(c.block.begin() + p.first[k], c.block.begin() + p.first[k + 1], 0.0);
    if (k == 0) x += c.embedding;
    if (k == S - 1) x += c.head;
    p.cost.push_back(x);
  }
  return p;
}

}  // namespace

double Partition::slowest() const { return *std::max_element(cost.begin(), cost.end()); }

std::string Partition::describe() const {
  const double total = std::accumulate(cost.begin(), cost.end(), 0.0);
  std::string s;
  for (int k = 0; k < stages(); ++k) {
    char share[32];
    std::snprintf(share, sizeof share, "%.1f%%", total > 0 ? 100.0 * cost[k] / total : 0.0);
    s += detail::concat(k ? ", " : "", "stage ", k, ": blocks ", first[k], "-", first[k + 1] - 1,
                        k == 0 ? " + embedding" : "", k == stages() - 1 ? " + head" : "", " ",
                        share);
  }
  return s;
}

Partition balanced_partition(const PartCosts& c, int S) {
  check_stages(c, S);
  const int L = static_cast<int>(c.block.size());
  std::vector<double> prefix(L + 1, 0.0);
  for (int i = 0; i < L; ++i) prefix[i + 1] = prefix[i] + c.block[i];
  // best[k][i]: the smallest possible slowest stage when stages 0..k-1 hold blocks 0..i-1;
  // cut[k][i]: where stage k-1 starts in that optimum.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(S + 1, std::vector<double>(L + 1, inf));
  std::vector<std::vector<int>> cut(S + 1, std::vector<int>(L + 1, 0));
  best[0][0] = 0;
  for (int k = 1; k <= S; ++k)
    for (int i = k; i <= L - (S - k); ++i)
      for (int j = k - 1; j < i; ++j) {
        if (best[k - 1][j] == inf) continue;
        double stage = prefix[i] - prefix[j];
        if (k == 1) stage += c.embedding;
        if (k == S) stage += c.head;
        const double worst = std::max(best[k - 1][j], stage);
        if (worst < best[k][i]) {
          best[k][i] = worst;
          cut[k][i] = j;
        }
      }
  std::vector<int> first(S + 1);
  first[S] = L;
  for (int k = S, i = L; k >= 1; --k) i = first[k - 1] = cut[k][i];
  return with_costs(c, first);
}

Partition even_partition(const PartCosts& c, int S) {
  check_stages(c, S);
  const int L = static_cast<int>(c.block.size());
  std::vector<int> first(S + 1);
  for (int k = 0; k <= S; ++k) first[k] = k * L / S;
  return with_costs(c, first);
}

}  // namespace loom::pipeline
