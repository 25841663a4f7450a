#include "loom/parallel/planner/auto_layout.hpp"

#include "loom/core/check.hpp"

namespace loom::planner {

PlanRequest auto_request(const RunConfig& config, int cores) {
  const TrainConfig& t = config.train;
  PlanRequest req;
  req.model = config.model;
  req.world = t.nproc;
  req.global_batch = t.batch_size * t.nproc;
  req.seq = t.seq_len;
  req.recompute = t.recompute;
  req.cores = cores;
  req.zero = t.zero;
  req.bucket_mb = t.bucket_mb;
  req.interleave = t.partition.empty() && !t.rebalance;
  return req;
}

std::map<std::string, std::string> apply_layout(TrainConfig& t, const Layout& L, int global_batch) {
  LOOM_CHECK(L.dp >= 1 && global_batch % L.dp == 0, "parallel auto: global batch ", global_batch,
             " is not divisible by dp ", L.dp);
  t.tp = L.tp;
  t.pp = L.pp;
  t.micro_batches = L.micro_batches;
  t.schedule = L.schedule;
  t.virtual_stages = L.virtual_stages;
  t.batch_size = global_batch / L.dp;
  t.parallel = LayoutChoice::kManual;
  return {{"tp", std::to_string(t.tp)},
          {"pp", std::to_string(t.pp)},
          {"micro_batches", std::to_string(t.micro_batches)},
          {"schedule", pipeline::name(t.schedule)},
          {"virtual_stages", std::to_string(t.virtual_stages)},
          {"batch_size", std::to_string(t.batch_size)},
          {"parallel", "manual"}};
}

}  // namespace loom::planner
