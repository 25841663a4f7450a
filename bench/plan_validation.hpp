#pragma once
// Checking the planner against real runs (`loom plan --validate N`): each layout is trained for
// a few steps by `loom train` on local ranks, its median step time read back from the metrics
// log, and printed beside the prediction:
//   layout                              predicted_s  measured_s   error  speedup pred  meas
//   dp 2 x tp 1 x pp 1                        0.412       0.455   -9.5%          1.95  1.80
// error = predicted / measured - 1 (negative: the planner is optimistic); speedup: over the
// 1-rank run of the same global batch.
#include <string>
#include <vector>

#include "loom/parallel/planner/planner.hpp"

namespace loom::planner {

// "DPxTPxPP[:schedule[:micro_batches]]", e.g. "2x1x1" or "1x1x2:zb1p:4", comma-separated; the
// schedule defaults to 1f1b, micro_batches to pp. Throws naming `flag` unless each is a layout
// `loom train` can run on `world` ranks (no interleaved schedule).
std::vector<Layout> parse_layouts(const std::string& text, int world, const std::string& flag);

// `count` of the predictions (fitting first as plan() ranks them),
// spread over the mesh shapes: the best of each (dp, tp, pp) first, then each one's second
// best, and so on, so that a short list still covers pp, tp and dp.
std::vector<Prediction> pick_layouts(const std::vector<Prediction>& ranked, int count);

struct ValidationRun {
  std::string config;                          // --config of loom train
  std::string data_dir;                        // "": the config's
  std::string out_dir = "runs/plan-validate";  // one directory and log per layout
  int steps = 8;    // trained per layout; the median is over steps 3..steps
  int threads = 1;  // per rank
  Recompute recompute = Recompute::kNone;
};

// loom train's arguments (after "train") for `layout` at the request's global batch and
// sequence length, writing into `out_dir`.
std::vector<std::string> layout_train_args(const PlanRequest& req, const Layout& layout,
                                           const ValidationRun& run, const std::string& out_dir);

// The median seconds per step of the "train" lines of a metrics log with step >= first_step,
// from their tokens_per_s (tokens_per_step tokens a step). Throws naming the file if it has
// none.
double median_step_seconds(const std::string& metrics, int first_step, double tokens_per_step);

// Trains `layout` for run.steps steps on req.world local ranks (in <out_dir>/<name>, output in
// <out_dir>/<name>.log, shown when the run fails) and returns its median step time. Throws on
// failure.
double measure_layout(const PlanRequest& req, const Layout& layout, const ValidationRun& run,
                      const std::string& name, const std::string& program = "/proc/self/exe");

struct ValidationRow {
  Layout layout;
  double predicted_s = 0;
  double measured_s = 0;
};

// The side-by-side table and a summary line (mean |error|, how many within 15%). With a
// `baseline` (the 1-rank run at the same global batch, measured in the same session) also each
// layout's speedup over it, predicted and measured: a ratio that a machine slowed down by other
// work (both runs alike) distorts less than the absolute times.
std::string validation_table(const std::vector<ValidationRow>& rows,
                             const ValidationRow* baseline = nullptr);

}  // namespace loom::planner
