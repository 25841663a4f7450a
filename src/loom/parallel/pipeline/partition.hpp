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
  PartCosts parts;             // the costs the stages' costs were summed from
  int stages() const { return static_cast<int>(cost.size()); }
  double slowest() const;
  std::vector<int> blocks() const;  // blocks per stage
  // "2,4": blocks per stage, as --partition takes them
  std::string blocks_text() const;
  // "stage 0: blocks 0-4 (embedding) 26.1%, stage 1: ..."
  std::string describe() const;
};

// Throws loom::Error if stages < 1 or stages > number of blocks.
Partition balanced_partition(const PartCosts& costs, int stages);
// Equal numbers of blocks per stage (the naive split), for comparison.
Partition even_partition(const PartCosts& costs, int stages);
// The given blocks per stage (a --partition override); throws naming `flag` unless there are
// `stages` counts of at least 1 that add up to the number of blocks.
Partition partition_with_blocks(const PartCosts& costs, const std::vector<int>& blocks,
                                int stages, const std::string& flag);

// {2, 4} -> "2,4"
std::string blocks_text(const std::vector<int>& blocks_per_stage);

// "1,5" -> {1, 5}: blocks per stage for a model of n_layer blocks cut into `stages`; "" -> {}
// (no override). Throws loom::Error naming `flag` on anything else.
std::vector<int> parse_stage_blocks(const std::string& text, int n_layer, int stages,
                                    const std::string& flag);

}  // namespace loom::pipeline
