#include "loom/config/parallel_plan.hpp"

#include <sstream>

#include "loom/parallel/pipeline/partition.hpp"

namespace loom {

ParallelPlan make_parallel_plan(const RunConfig& config, int world) {
  const TrainConfig& t = config.train;
  ParallelPlan p;
  p.world = world;
  p.mesh = parallel::mesh_shape(world, t.tp, t.pp, t.ep);
  p.ep = t.ep;
  if (t.pp == 1) {
    p.stage_blocks = {config.model.n_layer};
  } else {
    p.stage_blocks = pipeline::parse_stage_blocks(t.partition, config.model.n_layer, t.pp,
                                                  "--partition");
    p.schedule = t.schedule;
    p.micro_batches = t.micro_batches > 0 ? t.micro_batches : t.pp;
    p.virtual_stages = t.virtual_stages;
  }
  p.precision_asked = t.precision;
  p.precision = kernels::resolve_precision(t.precision);
  p.recompute = t.recompute;
  p.zero = t.zero;
  p.grad_reduce = t.grad_reduce;
  p.bucket_mb = t.bucket_mb;
  return p;
}

std::string ParallelPlan::describe() const {
  std::ostringstream s;
  s << "plan: " << world << (world == 1 ? " rank" : " ranks") << " = pp " << mesh.pp << " x dp "
    << mesh.dp << " x tp " << mesh.tp << " x ep " << ep << " x sp " << sp << " | ";
  if (mesh.pp == 1)
    s << "one stage";
  else if (stage_blocks.empty())
    s << mesh.pp << " stages balanced by costs timed at start-up";
  else
    s << "blocks per stage " << pipeline::blocks_text(stage_blocks);
  s << " | schedule " << pipeline::name(schedule) << ", " << micro_batches
    << (micro_batches == 1 ? " micro-batch" : " micro-batches") << " per batch";
  if (virtual_stages > 1) s << ", " << virtual_stages << " chunks per rank";
  s << " | " << kernels::precision_name(precision) << " matmuls";
  if (precision != precision_asked)
    s << " (" << kernels::precision_name(precision_asked) << " asked: not on this CPU)";
  s << " | recompute " << recompute_name(recompute) << " | ZeRO-" << zero << " | gradients "
    << grad_reduce_name(grad_reduce) << " in " << bucket_mb << " MiB buckets | device "
    << device::device_name(device);
  return s.str();
}

}  // namespace loom
