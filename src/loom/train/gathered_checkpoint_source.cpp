#include "loom/train/gathered_checkpoint_source.hpp"

#include "loom/parallel/tensor_parallel.hpp"

namespace loom {

const float* GatheredCheckpointSource::tensor(CheckpointTensor kind, const ParamInfo& whole_p,
                                              float* scratch) {
  // The local tensor alone, as a layout of one tensor at offset 0.
  std::vector<ParamInfo> one;
  const float* piece = nullptr;
  for (const ParamInfo& p : local_layout_) {
    if (p.name != whole_p.name) continue;
    piece_.resize(p.numel);
    piece = pieces_(kind, p, piece_.data());
    one.push_back(p);
    one.back().offset = 0;
  }
  parallel::gather_whole_tensor(tp_, one, piece, whole_p, scratch);
  if (gather_stages_) gather_stages_(whole_p, scratch);
  return scratch;
}

}  // namespace loom
