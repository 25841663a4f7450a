#include "loom/parallel/planner/planner.hpp"

#include <algorithm>

#include "loom/core/check.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/parallel/pipeline/partition.hpp"
#include "loom/parallel/pipeline/pipeline_training.hpp"
#include "loom/parallel/planner/memory_model.hpp"
#include "loom/parallel/pipeline/simulator.hpp"

namespace loom::planner {
namespace {

// Ring all-reduce of `bytes` over n ranks at bus bandwidth `gbps`.
double allreduce_s(double bytes, int n, double gbps) {
  return n <= 1 ? 0.0 : bytes * 2.0 * (n - 1) / n / (gbps * 1e9);
}

// How a group of the mesh falls on hosts of `ranks_per_host` consecutive mesh positions: its
// members are positions first + i * stride, i < n.
struct Span {
  int hosts = 1;          // hosts it touches
  int per_host = 1;       // members on each (when even)
  bool even = true;       // every host holds the same number
};

Span span_of(int first, int stride, int n, int ranks_per_host) {
  std::vector<int> count;  // members per host touched, in order of first member
  std::vector<int> host_seen;
  for (int i = 0; i < n; ++i) {
    const int host = ranks_per_host > 0 ? (first + i * stride) / ranks_per_host : 0;
    const auto it = std::find(host_seen.begin(), host_seen.end(), host);
    if (it == host_seen.end()) {
      host_seen.push_back(host);
      count.push_back(1);
    } else {
      ++count[static_cast<size_t>(it - host_seen.begin())];
    }
  }
  Span g;
  g.hosts = static_cast<int>(host_seen.size());
  g.per_host = count[0];
  g.even = std::all_of(count.begin(), count.end(), [&](int c) { return c == count[0]; });
  return g;
}

// All-reduce of `bytes` over a group spanning `g` (comm/topology.hpp's two levels when it can).
double group_allreduce_s(double bytes, const Span& g, const Bandwidths& bw) {
  if (g.hosts == 1) return allreduce_s(bytes, g.per_host, bw.allreduce_gbps);
  if (!g.even || g.per_host == 1)
    return allreduce_s(bytes, g.hosts * (g.even ? g.per_host : 1), bw.inter_host_gbps);
  return allreduce_s(bytes, g.per_host, bw.allreduce_gbps) +
         allreduce_s(bytes / g.per_host, g.hosts, bw.inter_host_gbps);
}

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

// Each chunk's most micro-batches between F and `until` on `stage`. Until W: how many activation
// sets its pool grows to (a chunk's sets are reused by its later micro-batches, never by another
// chunk); until B: how many of them hold their B-only buffers at once (a split B returns them to
// the chunk's pool for the next F).
std::vector<int> chunk_peaks(const pipeline::Schedule& sched, int stage, pipeline::Op until) {
  std::vector<int> live(sched.virtual_stages(), 0), peak(sched.virtual_stages(), 0);
  for (const pipeline::Action& a : sched.actions(stage)) {
    if (a.op == pipeline::Op::F) peak[a.chunk] = std::max(peak[a.chunk], ++live[a.chunk]);
    if (a.op == until) --live[a.chunk];
  }
  return peak;
}

}  // namespace

std::string Layout::describe() const {
  std::string s = detail::concat("dp ", dp, " x tp ", tp, " x pp ", pp);
  if (pp > 1) {
    s += detail::concat(", ", pipeline::name(schedule));
    if (virtual_stages > 1) s += detail::concat(" v", virtual_stages);
    s += detail::concat(", m ", micro_batches);
  }
  return s;
}

Prediction predict(const PlanRequest& req, const KernelCosts& k, const Bandwidths& bw,
                   const Layout& L) {
  const GPTConfig& m = req.model;
  const int S = L.pp * L.virtual_stages;
  LOOM_CHECK(L.dp * L.tp * L.pp == req.world, "plan: dp ", L.dp, " x tp ", L.tp, " x pp ", L.pp,
             " != world size ", req.world);
  LOOM_CHECK(req.global_batch % (L.dp * L.micro_batches) == 0, "plan: global batch ",
             req.global_batch, " is not divisible by dp x micro_batches = ", L.dp * L.micro_batches);
  const double mbs = static_cast<double>(req.global_batch) / (L.dp * L.micro_batches);
  const double tokens = mbs * req.seq;
  // Ranks whose threads outnumber the cores each get a share of them.
  const double slowdown =
      req.cores_per_rank > 0 ? k.threads / req.cores_per_rank
      : req.cores > 0        ? std::max(1.0, static_cast<double>(req.world) * k.threads / req.cores)
                             : 1.0;
  // The costs are per sequence of k.seq tokens.
  const double scale = mbs * req.seq / k.seq * slowdown;
  const double act_bytes = tokens * m.d_model * 4.0;
  // Tensor parallel: compute / tp; per block two all-reduces of the activations in F, two in B.
  // The first group of each kind (mesh position 0's): tp = consecutive positions, dp every tp-th,
  // pp every (dp x tp)-th, the embedding group the first and last stage.
  const int R = req.ranks_per_host;
  LOOM_CHECK(R >= 0 && (R == 0 || req.world % R == 0), "plan: ", R,
             " ranks per host do not divide the world size ", req.world);
  const Span tp_span = span_of(0, 1, L.tp, R), dp_span = span_of(0, L.tp, L.dp, R),
             pp_span = span_of(0, L.dp * L.tp, L.pp, R),
             embedding_span = span_of(0, (L.pp - 1) * L.dp * L.tp, L.pp > 1 ? 2 : 1, R);
  const double tp_ar = group_allreduce_s(act_bytes, tp_span, bw);
  const bool zero_bubble = L.pp > 1 && L.schedule == pipeline::ScheduleKind::ZeroBubbleH1;
  LOOM_CHECK(req.recompute != Recompute::kFull || !zero_bubble,
             "plan: recompute full cannot run with schedule zb1p (", L.describe(), ")");
  LOOM_CHECK(req.zero >= 0 && req.zero <= 3, "plan: --zero must be 0, 1, 2 or 3, got ", req.zero);
  LOOM_CHECK(req.zero < 2 || L.pp == 1, "plan: --zero ", req.zero, " cannot run with pp ", L.pp,
             " (", L.describe(), ")");
  // What backward runs again per block, with the all-reduces of a recomputed tp forward.
  const double redo = req.recompute == Recompute::kFull ? k.block.f * scale / L.tp + 2 * tp_ar
                      : req.recompute == Recompute::kSelective
                          ? k.block_attention_f * scale / L.tp
                          : 0.0;
  pipeline::PartCosts parts;
  parts.block.assign(m.n_layer, k.block.total() * scale / L.tp + 4 * tp_ar + redo);
  parts.embedding = k.embedding.total() * scale / L.tp + tp_ar;
  parts.head = k.head.total() * scale / L.tp;
  const pipeline::Partition part = pipeline::balanced_partition(parts, S);

  const pipeline::Schedule sched =
      pipeline::make_schedule(L.schedule, L.pp, L.micro_batches, L.virtual_stages);
  pipeline::SimCosts sim;
  const double p2p_gbps = pp_span.hosts > 1 ? bw.inter_host_gbps : bw.p2p_gbps;
  sim.p2p_s = L.pp > 1 ? act_bytes / (p2p_gbps * 1e9) : 0.0;
  sim.chunk.assign(L.pp, std::vector<pipeline::ChunkCost>(L.virtual_stages));
  std::vector<double> pooled_bytes(L.pp, 0.0), scratch_bytes(L.pp, 0.0);
  // Each rank's piece of the model (its stage's chunks; every tp rank holds as much).
  std::vector<ModelShard> shards;
  for (int s = 0; s < L.pp; ++s) shards.push_back(pipeline::stage_shard(part, s, 0, L.tp, L.virtual_stages));
  // Each chunk's activation plan (model/activation_plan) for one micro-batch.
  std::vector<std::vector<ActivationBytes>> acts(L.pp, std::vector<ActivationBytes>(L.virtual_stages));
  for (int s = 0; s < L.pp; ++s)
    for (int c = 0; c < L.virtual_stages; ++c) {
      const int g = sched.virtual_stage(s, c);
      const int nb = part.first[g + 1] - part.first[g];
      pipeline::ChunkCost& cc = sim.chunk[s][c];
      cc.f = nb * (k.block.f * scale / L.tp + 2 * tp_ar);
      cc.b = nb * (k.block.b * scale / L.tp + 2 * tp_ar + redo);
      cc.w = nb * k.block.w * scale / L.tp;
      acts[s][c] = activation_plan(
          m, activation_shape(m, shards[s], c,
                              {static_cast<int>(mbs), req.seq, req.recompute, zero_bubble,
                               std::max(1, k.threads)}));
      scratch_bytes[s] = std::max(scratch_bytes[s], static_cast<double>(acts[s][c].scratch));
      if (g == 0) {
        cc.f += k.embedding.f * scale / L.tp + tp_ar;
        cc.w += k.embedding.w * scale / L.tp;
      }
      if (g == S - 1) {
        cc.f += k.head.f * scale / L.tp;
        cc.b += k.head.b * scale / L.tp;
        cc.w += k.head.w * scale / L.tp;
      }
      cc.activation_bytes = static_cast<double>(acts[s][c].set());
    }
  // A chunk's sets keep their kept buffers until W; B-only buffers are held from F to B (to W
  // without a split backward, where B and W are one action pair that frees the set at W).
  for (int s = 0; s < L.pp; ++s) {
    const std::vector<int> until_w = chunk_peaks(sched, s, pipeline::Op::W);
    const std::vector<int> until_b =
        zero_bubble ? chunk_peaks(sched, s, pipeline::Op::B) : until_w;
    for (int c = 0; c < L.virtual_stages; ++c) {
      const ActivationBytes& a = acts[s][c];
      pooled_bytes[s] += until_w[c] * static_cast<double>(a.kept() + a.moe()) +
                         until_b[c] * static_cast<double>(a.b_only() + a.masks());
    }
  }
  const pipeline::SimResult r = pipeline::simulate(sched, sim);

  Prediction p;
  p.layout = L;
  p.zero = req.zero;
  p.recompute = req.recompute;
  p.pipeline_s = r.step_s;
  p.bubble = L.pp > 1 ? r.bubble_fraction : 0.0;
  p.stage_first_block = part.first;
  const int opt_share = req.zero > 0 ? L.dp : 1;
  double worst_comm = 0, worst_opt = 0, worst_mem = 0, worst_act = 0;
  for (int s = 0; s < L.pp; ++s) {
    const double params = shard_params(m, shards[s]);
    // ZeRO-3 gathers the parameters before the forward and again before the backward, and
    // reduce-scatters the gradients: an all-reduce's traffic and half of one more.
    double comm = group_allreduce_s(params * 4, dp_span, bw) * (req.zero == 3 ? 1.5 : 1.0);
    if (L.pp > 1 && (s == 0 || s == L.pp - 1))
      comm += group_allreduce_s(static_cast<double>(m.vocab_size) / L.tp * m.d_model * 4,
                                embedding_span, bw);
    const double opt = params / opt_share * k.adamw_s_per_param * slowdown;
    const double mem = model_state_bytes(m, shards[s], L.dp, req.zero, req.bucket_mb).total() +
                       pooled_bytes[s] + scratch_bytes[s];
    worst_comm = std::max(worst_comm, comm);
    worst_opt = std::max(worst_opt, opt);
    worst_mem = std::max(worst_mem, mem);
    worst_act = std::max(worst_act, pooled_bytes[s] + scratch_bytes[s]);
  }
  p.dp_comm_s = worst_comm;
  p.optimizer_s = worst_opt;
  p.step_s = p.pipeline_s + p.dp_comm_s + p.optimizer_s;
  p.memory_gb = worst_mem / 1e9;
  p.activation_gb = worst_act / 1e9;
  p.fits = req.mem_gb <= 0 || p.memory_gb <= req.mem_gb;
  return p;
}

namespace {

// Appends every valid layout of `req` (unsorted).
void add_layouts(const PlanRequest& req, const KernelCosts& k, const Bandwidths& bw,
                 std::vector<Prediction>& out) {
  using pipeline::ScheduleKind;
  for (int tp : divisors(req.world)) {
    if (tp > req.max_tp || req.model.n_head % tp != 0) continue;
    for (int pp : divisors(req.world / tp)) {
      const int dp = req.world / tp / pp;
      if (pp > req.model.n_layer || req.global_batch % dp != 0) continue;
      if (pp > 1 && req.zero >= 2) continue;  // loom train refuses ZeRO-2 and 3 with pipelining
      const int per_replica = req.global_batch / dp;
      if (pp == 1) {
        out.push_back(predict(req, k, bw, {dp, tp, 1, ScheduleKind::OneFOneB, 1, 1}));
        continue;
      }
      for (int mb : divisors(per_replica)) {
        for (ScheduleKind s : {ScheduleKind::GPipe, ScheduleKind::OneFOneB, ScheduleKind::ZeroBubbleH1})
          if (s != ScheduleKind::ZeroBubbleH1 || req.recompute != Recompute::kFull)
            out.push_back(predict(req, k, bw, {dp, tp, pp, s, 1, mb}));
        // Interleaved: v chunks per rank, each at least one block; m a multiple of pp.
        for (int v = 2; req.interleave && mb % pp == 0 && pp * v <= req.model.n_layer; ++v)
          out.push_back(predict(req, k, bw, {dp, tp, pp, ScheduleKind::Interleaved, v, mb}));
      }
    }
  }
}

// Checks that there is a layout and sorts them: the fitting ones first, each group fastest first.
std::vector<Prediction> ranked(const PlanRequest& req, std::vector<Prediction> out) {
  LOOM_CHECK(!out.empty(), "plan: no dp x tp x pp layout of ", req.world, " ranks fits n_head ",
             req.model.n_head, ", n_layer ", req.model.n_layer, " and global batch ",
             req.global_batch);
  std::stable_sort(out.begin(), out.end(), [](const Prediction& a, const Prediction& b) {
    if (a.fits != b.fits) return a.fits;
    return a.step_s < b.step_s;
  });
  return out;
}

void check_request(const PlanRequest& req) {
  LOOM_CHECK(req.world >= 1, "--nproc must be >= 1, got ", req.world);
  LOOM_CHECK(req.global_batch >= 1, "--global_batch must be >= 1, got ", req.global_batch);
}

}  // namespace

std::vector<Prediction> plan(const PlanRequest& req, const KernelCosts& k, const Bandwidths& bw) {
  check_request(req);
  std::vector<Prediction> out;
  add_layouts(req, k, bw, out);
  return ranked(req, std::move(out));
}

std::vector<Prediction> plan_each(const PlanRequest& req, const KernelCosts& k,
                                  const Bandwidths& bw, const std::vector<int>& zero_stages,
                                  const std::vector<Recompute>& recomputes,
                                  const std::function<void(int, int)>& progress) {
  check_request(req);
  std::vector<Prediction> out;
  const int total = static_cast<int>(zero_stages.size() * recomputes.size());
  int done = 0;
  for (int zero : zero_stages)
    for (Recompute recompute : recomputes) {
      PlanRequest r = req;
      r.zero = zero;
      r.recompute = recompute;
      add_layouts(r, k, bw, out);
      if (progress) progress(++done, total);
    }
  return ranked(req, std::move(out));
}

Prediction best_trainable_layout(const PlanRequest& req, const KernelCosts& costs,
                                 const Bandwidths& bw) {
  for (const Prediction& p : plan(req, costs, bw))
    if (p.fits) return p;
  LOOM_FAIL("plan: no layout of ", req.world, " ranks fits in --mem_gb ", req.mem_gb, " GB per rank");
}

}  // namespace loom::planner
