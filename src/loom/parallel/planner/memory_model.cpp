#include "loom/parallel/planner/memory_model.hpp"

#include <algorithm>
#include <cmath>

#include "loom/comm/algorithms/algorithms.hpp"
#include "loom/core/check.hpp"
#include "loom/model/activation_plan.hpp"
#include "loom/model/model_shard.hpp"
#include "loom/model/param_layout.hpp"
#include "loom/parallel/sharded_gradients.hpp"

namespace loom {

namespace {

int micro_batches(const MemoryOptions& o) {
  return o.pp > 1 ? (o.micro_batches > 0 ? o.micro_batches : o.pp) : 1;
}

// First block of each stage, then n_layer.
std::vector<int> stage_bounds(const MemoryOptions& o) {
  if (!o.stage_first.empty()) return o.stage_first;
  std::vector<int> first{0};
  const int L = o.model.n_layer;
  for (int s = 0; s < o.pp; ++s) first.push_back(first.back() + L / o.pp + (s < L % o.pp));
  return first;
}

// What this rank's piece of the model is: its blocks, the ends it holds and its tp widths.
struct RankShape {
  double blocks;          // blocks on the stage
  bool embedding, head;   // first / last stage
  double C, Cl, Fl, Hl;   // d_model, and the tp-local qkv/attention width, MLP width, heads
  double V, Vl;           // vocabulary, and this rank's rows of wte (padded for tp)
};

RankShape rank_shape(const MemoryOptions& o) {
  const GPTConfig& c = o.model;
  const std::vector<int> first = stage_bounds(o);
  RankShape r;
  r.blocks = first[o.stage + 1] - first[o.stage];
  r.embedding = o.stage == 0;
  r.head = o.stage == o.pp - 1;
  r.C = c.d_model;
  r.Cl = r.C / o.tp;
  r.Fl = 4 * r.C / o.tp;
  r.Hl = static_cast<double>(c.n_head) / o.tp;
  r.V = c.vocab_size;
  r.Vl = o.tp > 1 ? static_cast<double>(padded_vocab(c.vocab_size, o.tp)) / o.tp : r.V;
  return r;
}

// Parameters of the GEMM weights that bf16 converts (and caches per step): the four matrices of
// each block and, on the last stage, the tied embedding (the LM head).
double gemm_weight_params(const RankShape& r) {
  return r.blocks * 12.0 * r.C * r.Cl + (r.head ? r.Vl * r.C : 0.0);
}

// Most P2P buffers of one micro-batch activation (or its gradient) alive at once on a stage: a
// received activation from its RecvAct to its F, a forward output from F to its SendAct, and
// likewise for gradients (runtime.cpp).
int p2p_buffers_in_flight(const pipeline::Schedule& sched, int stage) {
  using pipeline::Op;
  int live = 0, peak = 0;
  for (const pipeline::Action& a : sched.actions(stage)) {
    const bool first = sched.is_first(stage, a.chunk), last = sched.is_last(stage, a.chunk);
    if (a.op == Op::RecvAct || a.op == Op::RecvGrad) ++live;
    if ((a.op == Op::F && !first) || (a.op == Op::B && !last)) --live;       // consumed
    if ((a.op == Op::F && !last) || (a.op == Op::B && !first)) ++live;       // produced
    if (a.op == Op::SendAct || a.op == Op::SendGrad) --live;
    peak = std::max(peak, live);
  }
  return peak;
}

}  // namespace

void check_memory_layout(const MemoryOptions& o) {
  LOOM_CHECK(o.tp >= 1, "--tp must be >= 1, got ", o.tp);
  check_tp_divides_heads(o.model, o.tp, "--tp");
  LOOM_CHECK(o.pp >= 1 && o.pp <= o.model.n_layer, "--pp ", o.pp,
             " must be between 1 and n_layer (", o.model.n_layer,
             "): every stage needs at least one block");
  LOOM_CHECK(o.zero < 2 || o.pp == 1, "--zero ", o.zero, " cannot be combined with --pp ", o.pp,
             " (as in loom train); use --zero 1 with --pp");
  LOOM_CHECK(o.pp == 1 || o.schedule != pipeline::ScheduleKind::Interleaved,
             "--schedule interleaved is not predicted by loom memory (gpipe, 1f1b or zb1p)");
  const int m = micro_batches(o);
  LOOM_CHECK(m >= 1 && o.batch % m == 0, "--micro_batches ", m, " must divide --batch_size ", o.batch);
  LOOM_CHECK(o.stage >= 0 && o.stage < o.pp, "memory: stage ", o.stage, " is outside [0, ", o.pp,
             ")");
  const std::vector<int> first = stage_bounds(o);
  LOOM_CHECK(static_cast<int>(first.size()) == o.pp + 1 && first.front() == 0 &&
                 first.back() == o.model.n_layer &&
                 std::adjacent_find(first.begin(), first.end(), std::greater_equal<int>()) ==
                     first.end(),
             "memory: the partition must be pp + 1 increasing block indices from 0 to n_layer");
}

ModelShard rank_shard(const MemoryOptions& o) {
  const std::vector<int> first = stage_bounds(o);
  return ModelShard{0, o.tp, first[o.stage], first[o.stage + 1], o.stage == 0, o.stage == o.pp - 1};
}

namespace {

// Parameters of one block of one of tp ranks: ln_1, ln_2 and the row-parallel biases whole;
// qkv, c_fc (weights and biases), attn.c_proj and mlp.c_proj weights split.
double block_params(const GPTConfig& c, int tp) {
  const double C = c.d_model, Cl = C / tp, Fl = 4 * C / tp;
  const double qkv_bias = c.qkv_bias ? 3 * Cl : 0;
  return 4 * C + (3 * C * Cl + qkv_bias) + (Cl * C + C) + (C * Fl + Fl) + (Fl * C + C);
}

// Rows of wte one of tp ranks holds (padded for tp).
double wte_rows(const GPTConfig& c, int tp) {
  return tp > 1 ? static_cast<double>(padded_vocab(c.vocab_size, tp)) / tp : c.vocab_size;
}

}  // namespace

double shard_params(const GPTConfig& c, const ModelShard& shard) {
  const double C = c.d_model;
  double blocks = 0;
  for (const BlockRange& r : shard.block_chunks(c)) blocks += r.last - r.first;
  return blocks * block_params(c, shard.tp_size) +
         (shard.has_embedding || shard.has_head ? wte_rows(c, shard.tp_size) * C : 0) +
         (shard.has_embedding ? static_cast<double>(c.context_len) * C : 0) +
         (shard.has_head ? 2 * C : 0);
}

double rank_params(const MemoryOptions& o) { return shard_params(o.model, rank_shard(o)); }

ModelStateBytes model_state_bytes(const GPTConfig& c, const ModelShard& shard, int dp, int zero,
                                  double bucket_mb) {
  const double f = 4, P = shard_params(c, shard);
  const int stage = dp > 1 ? zero : 0;  // one data-parallel rank has nothing to shard
  ModelStateBytes m{f * P, f * P, 2 * f * (stage > 0 ? P / dp : P)};
  if (stage < 2) return m;
  LOOM_CHECK(shard.has_embedding && shard.has_head && shard.num_chunks() == 1,
             "memory: ZeRO-", zero, " runs without pipeline parallelism");
  // ZeRO-2: buckets of bucket_mb; ZeRO-3: one bucket per backward slice (a bucket of 1 byte
  // closes at every slice), which are also its parameter units.
  const auto layout = gpt_param_layout(c, shard);
  const size_t bucket_bytes = stage == 3 ? 1 : static_cast<size_t>(bucket_mb * (1 << 20));
  m.gradients = static_cast<double>(
      parallel::ShardedGradients::planned_bytes(layout, bucket_bytes, dp, 0));
  if (stage == 3) {
    // Units: the embedding (wte, wpe), each block, ln_f.
    const double C = c.d_model, block = block_params(c, shard.tp_size);
    const double embedding = (wte_rows(c, shard.tp_size) + c.context_len) * C, ln_f = 2 * C;
    const int L = shard.end_block(c) - shard.first_block;
    auto mine = [&](double n) {
      return static_cast<double>(comm::block_of(static_cast<size_t>(n), dp, 0).count);
    };
    const double held = mine(embedding) + L * mine(block) + mine(ln_f);
    m.parameters = f * (held + embedding + ln_f + 2 * block);
    m.moments = 2 * f * held;
  }
  return m;
}

ActivationShape activation_shape(const GPTConfig& c, const ModelShard& shard, int chunk,
                                 const ForwardShape& f) {
  const std::vector<BlockRange> chunks = shard.block_chunks(c);
  ActivationShape s;
  s.blocks = chunks[chunk].last - chunks[chunk].first;
  s.first_block = chunks[chunk].first;
  s.embedding = chunk == 0 && shard.has_embedding;
  s.head = chunk + 1 == static_cast<int>(chunks.size()) && shard.has_head;
  s.tp = shard.tp_size;
  s.batch = f.batch;
  s.seq = f.seq;
  s.recompute = f.recompute;
  s.split_backward = f.split_backward;
  s.threads = f.threads;
  return s;
}

namespace {

bool split_backward(const MemoryOptions& o) {
  return o.pp > 1 && o.schedule == pipeline::ScheduleKind::ZeroBubbleH1;
}

// Most micro-batches on o's stage between their F and their `until`.
int most_in_flight(const MemoryOptions& o, pipeline::Op until) {
  if (o.pp == 1) return 1;
  const auto sched = pipeline::make_schedule(o.schedule, o.pp, micro_batches(o));
  int live = 0, peak = 0;
  for (const pipeline::Action& a : sched.actions(o.stage)) {
    if (a.op == pipeline::Op::F) peak = std::max(peak, ++live);
    if (a.op == until) --live;
  }
  return peak;
}

}  // namespace

int activation_sets_in_flight(const MemoryOptions& o) {
  return most_in_flight(o, split_backward(o) ? pipeline::Op::W : pipeline::Op::B);
}

int b_only_sets_in_flight(const MemoryOptions& o) { return most_in_flight(o, pipeline::Op::B); }

ActivationBytes rank_activations(const MemoryOptions& o) {
  return activation_plan(o.model, activation_shape(o.model, rank_shard(o), 0,
                                                   {o.batch / micro_batches(o), o.seq, o.recompute,
                                                    split_backward(o), o.threads}));
}

std::vector<MemoryItem> predict_memory(const MemoryOptions& o) {
  LOOM_CHECK(o.batch > 0 && o.seq > 0 && o.seq <= o.model.context_len,
             "memory: batch must be > 0 and seq in [1, context_len]");
  LOOM_CHECK(o.world >= 1 && o.zero >= 0 && o.zero <= 3, "memory: bad world size or ZeRO stage");
  check_memory_layout(o);
  const GPTConfig& c = o.model;
  const RankShape r = rank_shape(o);
  // Rows of one micro-batch (the whole batch without a pipeline).
  const double N = static_cast<double>(o.batch) / micro_batches(o) * o.seq, C = r.C;
  const double Cl = r.Cl, Fl = r.Fl;
  const double f = 4;  // bytes per float

  std::vector<MemoryItem> v;
  const ModelStateBytes state = model_state_bytes(c, rank_shard(o), o.world, o.zero, o.bucket_mb);
  const int zero = o.world > 1 ? o.zero : 0;
  v.push_back({"model state", zero == 3 ? "parameters (f32, ZeRO-3: this rank's shard, working "
                                          "buffers of the ends and two blocks)"
                                        : "parameters (f32)",
               state.parameters});
  v.push_back({"model state", zero == 3   ? "gradients (f32, ZeRO-3: a bucket per unit, shard)"
                              : zero == 2 ? "gradients (f32, ZeRO-2: bucket pool, wte+wpe, shard)"
                                          : "gradients (f32)",
               state.gradients});
  v.push_back({"model state", zero > 0 ? "AdamW moments (f32, this rank's shard)"
                                       : "AdamW moments (f32)",
               state.moments});

  // Activations (model/activation_plan): every set the stage holds keeps its `kept` buffers
  // (from its F to its W), the sets between F and B their B-only ones (a split B returns them to
  // the model's pool, where the next F takes them), and the model has one backward scratch.
  const ActivationBytes a = rank_activations(o);
  const double sets = activation_sets_in_flight(o), b_sets = b_only_sets_in_flight(o);
  v.push_back({"activations", "kept for W (per block: linear layers' inputs and outputs, output)",
               sets * static_cast<double>(a.kept())});
  v.push_back({"activations", "B-only per block (LayerNorm statistics, attention probabilities)",
               b_sets * static_cast<double>(a.b_only_per_block * a.blocks)});
  v.push_back({"activations", "stage input (B,T,C)", b_sets * static_cast<double>(a.stage_input)});
  v.push_back({"activations", o.recompute == Recompute::kFull
                                  ? "recomputed block (shared by the blocks)"
                                  : "recomputed attention probabilities (shared by the blocks)",
               b_sets * static_cast<double>(a.recomputed)});
  v.push_back({"activations", "head (ln_f, statistics, losses)", b_sets * static_cast<double>(a.head)});
  v.push_back({"activations", "logits (B*T*V)", b_sets * static_cast<double>(a.logits)});
  v.push_back({"activations", "dropout masks (uint8)", b_sets * static_cast<double>(a.masks())});
  // An MoE block's routing, expert activations and scratch stay with the set (to its W).
  v.push_back({"activations", "MoE blocks (routing, expert activations, scratch)",
               sets * static_cast<double>(a.moe())});
  v.push_back({"activations", "backward scratch (one per model)", static_cast<double>(a.scratch)});

  if (o.precision == kernels::MatmulPrecision::kBF16) {
    v.push_back({"bf16", "bf16 weight copies (once per step)", 2 * gemm_weight_params(r)});
    // The calling thread's operand buffers: the output gradient rounded once for both backward
    // products (the largest is the logits' gradient, rows padded to 64), the A operand of other
    // products (at most a c_fc output, N x 4C/tp, or a LayerNorm output, N x C) and their B
    // operand (the LM head's input, N x C); the attention's backward holds its dout (N x C/tp)
    // rounded beside its q, k, v (N x 3C/tp).
    const double rounded_once = std::max(r.head ? std::ceil(r.Vl / 64) * 64 : 0.0, Fl);
    v.push_back(
        {"bf16", "bf16 operand scratch", 2 * N * (rounded_once + Cl + std::max(Fl, C) + C)});
  }
  if (o.pp > 1) {
    const auto sched = pipeline::make_schedule(o.schedule, o.pp, micro_batches(o));
    v.push_back({"pipeline", "P2P activation and gradient buffers (most in flight)",
                 f * N * C * p2p_buffers_in_flight(sched, o.stage)});
  }
  // The ring algorithms send to one neighbour and receive from the other: two channels per
  // group that carries data (dp, tp, the embedding group), one per direction of a P2P lane. An
  // end stage of a pipeline has one neighbour (one lane each way) and is in the embedding group;
  // a middle stage has lanes to both neighbours. A channel's memory is its slots' pages that
  // messages touch: a message is cut into slot-sized pieces that take the slots in turn, so over
  // a step every slot holds the group's largest piece: a ring all-reduce's block (segmented to
  // kRingSegmentBlockBytes, or less for a small message), ZeRO's reduce-scatter and all-gather of
  // whole shards (full slots), a pipeline lane's micro-batch activation.
  const double slot = static_cast<double>(o.shm_slot_bytes);
  auto ring = [&](double piece_bytes) {
    return 2 * o.shm_slots * std::min(slot, piece_bytes);
  };
  const double allreduce_block = static_cast<double>(comm::algorithms::kRingSegmentBlockBytes);
  double shm = 0;
  if (o.world > 1) shm += ring(o.zero > 0 ? slot : allreduce_block);
  if (o.tp > 1) shm += ring(std::min(allreduce_block, f * N * C / o.tp));
  if (o.pp > 1) {
    const bool end_stage = r.embedding || r.head;
    shm += (end_stage ? 1 : 2) * ring(f * N * C);  // one lane each way per neighbour
    if (end_stage) shm += ring(allreduce_block);    // the tied wte's all-reduce
  }
  v.push_back({"communication", "shm ring channels (the slots' pages the step's messages touch)",
               shm});
  v.erase(std::remove_if(v.begin(), v.end(), [](const MemoryItem& i) { return i.bytes <= 0; }),
          v.end());
  return v;
}

double total_bytes(const std::vector<MemoryItem>& items) {
  double t = 0;
  for (const auto& i : items) t += i.bytes;
  return t;
}

}  // namespace loom
