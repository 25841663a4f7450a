#pragma once
// The planner behind `loom plan` (and later `--parallel auto`): enumerates every dp x tp x pp
// layout of a world size with its pipeline schedules and micro-batch counts, predicts each one's
// step time from calibrated kernel costs, the communication bandwidths and the pipeline
// simulator, estimates memory per rank, drops what does not fit and ranks the rest.
//
// Prediction of one step at a fixed global batch (sequences per optimizer step), each group's
// communication at the bandwidth of where its ranks sit (Bandwidths, PlanRequest::ranks_per_host;
// the mesh keeps tp groups inside hosts when tp divides the ranks per host):
//   pipeline    the schedule simulated with per-chunk F/B/W costs (blocks balanced over the
//               stages; tensor parallel divides compute by tp and adds two all-reduces of the
//               activations per block in F and two in B; --recompute adds to B what it runs
//               again: the attention kernel's forward (selective) or the block's whole forward
//               with its all-reduces (full)), messages of one micro-batch's activations at p2p
//               bandwidth
//   + dp        all-reduce of the rank's gradients over dp (not assumed hidden behind backward)
//   + embedding all-reduce of the tied wte gradient between the first and last stage (pp > 1)
//   + AdamW     over the rank's parameters, or its 1/dp share of them under ZeRO (--zero 1, 2:
//               the gradients' reduce-scatter plus the parameters' all-gather move what one
//               all-reduce moves, so the dp term is the same; 3: the parameters are gathered
//               before the forward and again before the backward, 1.5 all-reduces' traffic)
// Compute (pipeline and AdamW) is scaled by the calibration's threads / cores_per_rank when the
// cores of each rank are given (loom plan --cores_per_rank: a rank's threads run on that many
// cores), else slowed by world x threads / cores when the ranks' threads outnumber the machine's
// cores (the calibration ran alone).
// Memory per rank: the model state `loom memory` predicts (memory_model.hpp's model_state_bytes:
// parameters, gradients and AdamW moments under the ZeRO stage) of the most loaded stage's
// shard, and its activation sets, sized by the model's own activation plan
// (model/activation_plan, shaped by memory_model.hpp's activation_shape): each of its chunks
// keeps a pool of as many sets as it ever has micro-batches between F and W (GptStageChunk), so
// an interleaved rank holds the sum over its v chunks of each chunk's peak; under zb1p a set
// waiting for W holds only its kept buffers; plus the model's one backward scratch.
// Layouts `loom train` refuses (recompute full with zb1p, ZeRO-2 or 3 with pp > 1) are never
// produced.
#include <functional>
#include <string>
#include <vector>

#include "loom/model/gpt_config.hpp"
#include "loom/model/recompute.hpp"
#include "loom/parallel/pipeline/kernel_costs.hpp"
#include "loom/parallel/pipeline/schedule.hpp"

namespace loom::planner {

// Inside a host (shared memory: `loom bench comm` under `loom launch`) and between hosts (MPI:
// the same under mpirun across hosts). A group's collectives run at the intra-host figures when
// its ranks share a host; one spanning hosts runs in two levels (comm/topology.hpp): an all-
// reduce inside each host, then each host's 1/L share across hosts at inter_host_gbps (flat at
// inter_host_gbps when its hosts hold uneven numbers of its ranks); pipeline messages between
// stages on different hosts move at inter_host_gbps.
struct Bandwidths {
  double p2p_gbps = 10;         // point to point inside a host, GB/s
  double allreduce_gbps = 8;    // ring all-reduce bus bandwidth inside a host, GB/s
  double inter_host_gbps = 1;   // between hosts (all-reduce bus and point to point), GB/s
};

struct PlanRequest {
  GPTConfig model;
  int world = 1;
  int global_batch = 8;  // sequences per step over all replicas
  int seq = 0;           // tokens per sequence
  double mem_gb = 0;     // per rank; 0: no limit
  int max_tp = 8;
  Recompute recompute = Recompute::kNone;
  int cores = 0;  // hardware threads the ranks share (e.g. one host's); 0: never fewer than needed
  double cores_per_rank = 0;  // > 0: the cores each rank computes on (then `cores` is unused)
  int zero = 0;   // ZeRO stage of the run (--zero): 0, 1, 2 or 3 (2, 3: no pp > 1 layouts)
  double bucket_mb = 25;     // gradient bucket size (ZeRO-2's bucket pool)
  bool interleave = true;    // also interleaved layouts (off for --partition / --rebalance)
  // Ranks per host, each host holding consecutive mesh positions (parallel/mesh.hpp places them
  // so); 0: every rank on one host. Must divide world.
  int ranks_per_host = 0;
};

struct Layout {
  int dp = 1, tp = 1, pp = 1;
  pipeline::ScheduleKind schedule = pipeline::ScheduleKind::OneFOneB;
  int virtual_stages = 1;
  int micro_batches = 1;
  std::string describe() const;  // "dp 2 x tp 1 x pp 2, 1f1b, m 8"
};

struct Prediction {
  Layout layout;
  double step_s = 0;
  double pipeline_s = 0, dp_comm_s = 0, optimizer_s = 0;
  double bubble = 0;      // simulator's, 0 without pipeline
  double memory_gb = 0;   // most loaded rank
  int zero = 0;           // the ZeRO stage and recompute mode predicted (the request's)
  Recompute recompute = Recompute::kNone;
  double activation_gb = 0;  // the most activations a rank holds (model/activation_plan's sets)
  bool fits = true;
  std::vector<int> stage_first_block;  // the balanced partition (pp x v + 1 entries)
};

// Every valid layout, best (fitting, fastest) first. Throws naming the flag if none is valid.
std::vector<Prediction> plan(const PlanRequest& req, const KernelCosts& costs,
                             const Bandwidths& bw);

// plan() under each ZeRO stage of `zero_stages` and each of `recomputes` (every prediction names
// its own), best first; `progress(done, total)` after each of the combinations. Throws as plan()
// when no layout is valid under any of them.
std::vector<Prediction> plan_each(const PlanRequest& req, const KernelCosts& costs,
                                  const Bandwidths& bw, const std::vector<int>& zero_stages,
                                  const std::vector<Recompute>& recomputes,
                                  const std::function<void(int, int)>& progress = nullptr);

// The best layout that fits the memory limit (every layout plan() lists is one `loom train` can
// run); throws naming --mem_gb if none does.
Prediction best_trainable_layout(const PlanRequest& req, const KernelCosts& costs,
                                 const Bandwidths& bw);

// One layout's prediction (also for comparing a plan with a measured run).
Prediction predict(const PlanRequest& req, const KernelCosts& costs, const Bandwidths& bw,
                   const Layout& layout);

}  // namespace loom::planner
