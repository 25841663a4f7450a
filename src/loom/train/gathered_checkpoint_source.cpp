#include "loom/train/gathered_checkpoint_source.hpp"

#include "loom/parallel/tensor_parallel.hpp"

namespace loom {

const float* GatheredCheckpointSource::tensor(CheckpointTensor kind, const ParamInfo& whole_p,
                                              float* scratch) {
  const float* local = kind == CheckpointTensor::Param ? params_
                       : kind == CheckpointTensor::M   ? optimizer_.m()
                                                       : optimizer_.v();
  parallel::gather_whole_tensor(tp_, local_layout_, local, whole_p, scratch);
  if (gather_stages_) gather_stages_(whole_p, scratch);
  return scratch;
}

}  // namespace loom
