#pragma once
// Balanced contiguous partition of a model's blocks over pipeline (virtual) stages: stage k gets
// blocks [first[k], first[k+1]), at least one each, the first stage also the embedding and the
// last the final LayerNorm, LM head and loss. Minimises the slowest stage's cost, so the LM head
// (about two blocks' worth in gpt2-small) pushes blocks away from the last stage.
#include <string>
#include <vector>

namespace loom::pipeline {

// Costs of one micro-batch through each part (F + B + W, any unit).
struct PartCosts {
  std::vector<double> block;  // per block
  double embedding = 0;
  double head = 0;  // ln_f + LM head + loss
};

struct Partition {
  std::vector<int> first;      // stages + 1 entries: stage k has blocks [first[k], first[k+1])
  std::vector<double> cost;    // per stage
  int stages() const { return static_cast<int>(cost.size()); }
  double slowest() const;
  // "stage 0: blocks 0-4 (embedding) 26.1%, stage 1: ..."
  std::string describe() const;
};

// Throws loom::Error if stages < 1 or stages > number of blocks.
Partition balanced_partition(const PartCosts& costs, int stages);
// Equal numbers of blocks per stage (the naive split), for comparison.
Partition even_partition(const PartCosts& costs, int stages);

}  // namespace loom::pipeline
