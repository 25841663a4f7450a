#include "loom/parallel/pipeline/partition.hpp"

#include <algorithm>
#include <cstdlib>
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
  p.parts = c;
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

std::vector<int> Partition::blocks() const {
  std::vector<int> b;
  for (size_t k = 0; k + 1 < first.size(); ++k) b.push_back(first[k + 1] - first[k]);
  return b;
}

std::string Partition::blocks_text() const { return pipeline::blocks_text(blocks()); }

std::string blocks_text(const std::vector<int>& blocks_per_stage) {
  std::string s;
  for (int b : blocks_per_stage) s += detail::concat(s.empty() ? "" : ",", b);
  return s;
}

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

Partition partition_with_blocks(const PartCosts& c, const std::vector<int>& blocks, int S,
                                const std::string& flag) {
  const int L = static_cast<int>(c.block.size());
  LOOM_CHECK(static_cast<int>(blocks.size()) == S, flag, ": ", blocks.size(),
             " block counts for ", S, " pipeline stages (give one count per stage)");
  std::vector<int> first = {0};
  for (int b : blocks) {
    LOOM_CHECK(b >= 1, flag, ": every stage needs at least one block, got ", b);
    first.push_back(first.back() + b);
  }
  LOOM_CHECK(first.back() == L, flag, ": the block counts add up to ", first.back(),
             ", the model has ", L, " blocks (n_layer)");
  return with_costs(c, first);
}

std::vector<int> parse_stage_blocks(const std::string& text, int n_layer, int stages,
                                    const std::string& flag) {
  if (text.empty()) return {};
  std::vector<int> blocks;
  for (size_t at = 0; at <= text.size();) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    char* end = nullptr;
    const long b = std::strtol(item.c_str(), &end, 10);
    LOOM_CHECK(!item.empty() && *end == '\0' && b >= 1 && b <= n_layer, flag,
               ": expected blocks per stage as positive integers separated by commas (e.g. "
               "\"2,4\"), got '", text, "'");
    blocks.push_back(static_cast<int>(b));
    at = comma + 1;
  }
  // Checks the count and the sum with dummy costs: the same messages as with real ones.
  partition_with_blocks(PartCosts{std::vector<double>(n_layer, 0.0)}, blocks, stages, flag);
  return blocks;
}

}  // namespace loom::pipeline
