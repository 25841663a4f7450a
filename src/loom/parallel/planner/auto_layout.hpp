#pragma once
// `loom train --parallel auto`: the planner's request for a run, and its chosen layout written
// back into the run's config (and into the flags every launched rank gets).
#include <map>
#include <string>

#include "loom/parallel/planner/planner.hpp"
#include "loom/config/train_config.hpp"

namespace loom::planner {

// The request for `config`'s nproc ranks at the global batch of a plain data-parallel run
// (batch_size x nproc), its recompute and ZeRO stage; interleaved layouts only where the run
// can take one (no --partition: it names one block range per rank).
PlanRequest auto_request(const RunConfig& config, int cores);

// Writes `layout` into `t` (tp, pp, micro_batches, schedule, virtual_stages, batch_size per
// data-parallel rank of `global_batch`, parallel manual) and returns the same as flags
// (name -> text) for the launched ranks.
std::map<std::string, std::string> apply_layout(TrainConfig& t, const Layout& layout,
                                                int global_batch);

}  // namespace loom::planner
