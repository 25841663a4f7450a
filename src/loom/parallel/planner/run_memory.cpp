#include "loom/parallel/planner/run_memory.hpp"

#include <algorithm>

#include "loom/kernels/cpu/matmul.hpp"
#include "loom/model/recompute.hpp"
#include "loom/parallel/pipeline/schedule.hpp"
#include "loom/parallel/planner/memory_model.hpp"

namespace loom {

double planned_bytes_per_rank(const RunConfig& c, int threads) {
  const TrainConfig& t = c.train;
  MemoryOptions o;
  o.model = c.model;
  o.batch = t.batch_size;
  o.seq = t.seq_len > 0 ? t.seq_len : c.model.context_len;
  o.threads = std::max(1, threads);
  o.precision = t.precision;
  o.world = std::max(1, t.nproc / (t.tp * t.pp));
  o.zero = t.zero;
  o.bucket_mb = t.bucket_mb;
  o.recompute = t.recompute;
  o.tp = t.tp;
  o.pp = t.pp;
  o.micro_batches = t.micro_batches;
  o.schedule = t.schedule;
  if (o.pp > 1 && o.schedule == pipeline::ScheduleKind::Interleaved) return 0;
  double most = 0;
  for (o.stage = 0; o.stage < o.pp; ++o.stage) {
    check_memory_layout(o);
    most = std::max(most, total_bytes(predict_memory(o)));
  }
  return most;
}

}  // namespace loom
