#include "loom/parallel/zero3_params.hpp"

#include <algorithm>
#include <cstring>

#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"
#include "loom/kernels/cpu/bf16_operands.hpp"
#include "loom/parallel/sharded_gradients.hpp"

namespace loom::parallel {
namespace {

// backward_slices of a layout with the embedding first and ln_f last (what ZeRO-3 runs on).
std::vector<FlatRange> units_of(const std::vector<ParamInfo>& layout) {
  std::vector<FlatRange> units = backward_slices(layout);
  LOOM_CHECK(units.size() >= 3 && layout.front().name == "transformer.wte.weight" &&
                 layout[layout.size() - 2].name == "transformer.ln_f.weight",
             "ZeRO-3: the model shard must hold the embedding, at least one block and ln_f "
             "(ZeRO-3 runs without pipeline parallelism)");
  return units;
}

}  // namespace

Zero3Params::Sizes Zero3Params::sizes(const std::vector<FlatRange>& units, int world, int rank) {
  Sizes s;
  for (size_t k = 0; k < units.size(); ++k) {
    const size_t n = units[k].end - units[k].begin;
    s.shard += comm::block_of(n, world, rank).count;
    if (k == 0 || k + 1 == units.size())
      s.ends += n;
    else
      s.block = std::max(s.block, n);
  }
  return s;
}

size_t Zero3Params::planned_bytes(const std::vector<ParamInfo>& layout, int world, int rank) {
  return sizes(units_of(layout), world, rank).bytes();
}

Zero3Params::Zero3Params(comm::Communicator& comm, const std::vector<ParamInfo>& layout)
    : comm_(comm),
      units_(units_of(layout)),
      sizes_(sizes(units_, comm.size(), comm.rank())) {
  shard_.resize(sizes_.shard);
  std::fill_n(shard_.data(), sizes_.shard, 0.0f);
  ends_.resize(sizes_.ends);
  for (auto& b : blocks_) b.resize(sizes_.block);
  // The ends buffer: the embedding's partition, then ln_f's.
  size_t shard_at = 0;
  for (size_t k = 0; k < units_.size(); ++k) {
    const FlatRange u = units_[k];
    const comm::Block mine = comm::block_of(u.end - u.begin, comm.size(), comm.rank());
    float* working = k == 0                   ? ends_.data()
                     : k + 1 == units_.size() ? ends_.data() + units_[0].end
                                              : blocks_[(k - 1) % 2].data();
    parts_.push_back({mine, shard_at, working});
    shard_at += mine.count;
  }
  for (const ParamInfo& p : layout) {
    const auto k = static_cast<size_t>(
        std::find_if(units_.begin(), units_.end(),
                     [&](const FlatRange& u) { return p.offset < u.end; }) -
        units_.begin());
    LOOM_CHECK(k < units_.size() && p.offset + p.numel <= units_[k].end, "ZeRO-3: tensor ",
               p.name, " does not lie inside one unit");
    storage_.push_back(parts_[k].working + (p.offset - units_[k].begin));
  }
  holds_.fill(kNone);
}

Zero3Params::~Zero3Params() {
  // A gather in flight writes into the buffers: Work's destructor waits for it.
  for (auto& w : work_) w.clear();
}

std::vector<size_t> Zero3Params::parts_of(int unit) const {
  if (unit == kEnds) return {0, units_.size() - 1};
  LOOM_CHECK(unit >= 0 && static_cast<size_t>(unit) + 2 < units_.size(), "ZeRO-3: block ", unit,
             " of a model shard with ", units_.size() - 2, " blocks");
  return {static_cast<size_t>(unit) + 1};
}

void Zero3Params::start(int unit) {
  const int s = slot(unit);
  if (holds_[s] == unit) return;  // there, or on its way
  wait(s);  // another unit's gather into this slot (its user is done with it)
  holds_[s] = unit;
  fresh_[s] = true;
  for (size_t k : parts_of(unit)) {
    const Part& p = parts_[k];
    const FlatRange u = units_[k];
    std::memcpy(p.working + p.mine.offset, shard_.data() + p.shard_offset,
                p.mine.count * sizeof(float));
    work_[s].push_back(comm_.run_async({comm::OpKind::AllGather, p.working, u.end - u.begin}));
  }
  ++gathers_;
}

void Zero3Params::wait(int s) {
  if (work_[s].empty()) return;
  const bool done = std::all_of(work_[s].begin(), work_[s].end(),
                                [](const std::unique_ptr<comm::Work>& w) { return w->done(); });
  if (done) ++hidden_;
  Timer t;
  for (auto& w : work_[s]) w->wait();
  work_[s].clear();
  wait_seconds_ += t.seconds();
}

void Zero3Params::use(int unit, int next) {
  start(unit);
  wait(slot(unit));
  if (fresh_[slot(unit)]) {
    // New weights at addresses the bf16 matmuls may have cached copies of (another unit's).
    kernels::new_weight_generation();
    fresh_[slot(unit)] = false;
  }
  // The next unit's gather overlaps this one's compute, unless it needs this unit's buffer.
  if (next != kNone && slot(next) != slot(unit)) start(next);
}

ZeroOptimizer::Shard Zero3Params::shard() {
  ZeroOptimizer::Shard out;
  for (const Part& p : parts_) out.push_back(shard_.data() + p.shard_offset);
  return out;
}

void Zero3Params::invalidate() {
  for (int s = 0; s < 3; ++s) wait(s);
  holds_.fill(kNone);
}

void Zero3Params::load(const float* params) {
  invalidate();
  for (size_t k = 0; k < parts_.size(); ++k) {
    const Part& p = parts_[k];
    std::memcpy(shard_.data() + p.shard_offset, params + units_[k].begin + p.mine.offset,
                p.mine.count * sizeof(float));
  }
}

void Zero3Params::gather_tensor(const ParamInfo& t, float* out) const {
  std::fill_n(out, t.numel, 0.0f);
  for (size_t k = 0; k < parts_.size(); ++k) {
    const Part& p = parts_[k];
    const size_t mine_begin = units_[k].begin + p.mine.offset;
    const size_t begin = std::max(mine_begin, t.offset);
    const size_t end = std::min(mine_begin + p.mine.count, t.offset + t.numel);
    if (begin >= end) continue;
    std::memcpy(out + (begin - t.offset), shard_.data() + p.shard_offset + (begin - mine_begin),
                (end - begin) * sizeof(float));
  }
  // The ranks' blocks are disjoint, so their sum assembles the tensor exactly (x + 0 = x).
  comm_.allreduce(out, t.numel);
}

size_t Zero3Params::bytes() const { return sizes_.bytes(); }

}  // namespace loom::parallel
