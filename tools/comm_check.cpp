#include "comm_check.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "loom/comm/reduce.hpp"

namespace loom::comm {
namespace {

// Rank r's input element i: an integer in [-5, 5], different per rank, element and case.
float input(int rank, size_t i, int salt) {
  return static_cast<float>(static_cast<int>((rank * 7 + i * 3 + static_cast<size_t>(salt)) % 11) - 5);
}

constexpr float kGarbage = -12345.0f;  // fills what a rank does not contribute

// Element values as they are stored in a buffer of `dtype`.
struct Buffer {
  DType dtype;
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  Buffer(DType t, size_t n) : dtype(t), f32(t == DType::F32 ? n : 0), bf16(t == DType::BF16 ? n : 0) {}
  void* data() { return dtype == DType::F32 ? static_cast<void*>(f32.data()) : bf16.data(); }
  void set(size_t i, float v) {
    if (dtype == DType::F32)
      f32[i] = v;
    else
      bf16[i] = float_to_bf16(v);
  }
  float get(size_t i) const { return dtype == DType::F32 ? f32[i] : bf16_to_float(bf16[i]); }
};

// The expected result for element i, computed the way the contract defines it: an exact sum,
// then (for Avg) one multiplication by 1/n rounded to the element type.
float reduced(int n, size_t i, int salt, const Collective& c) {
  float sum = 0;
  for (int r = 0; r < n; ++r) sum += input(r, i, salt);
  if (c.op == ReduceOp::Sum || n == 1) return sum;
  const float avg = sum * (1.0f / static_cast<float>(n));
  return c.dtype == DType::F32 ? avg : bf16_to_float(float_to_bf16(avg));
}

std::string check_one(Communicator& comm, Collective c, Algo algo, int salt) {
  const int n = comm.size(), me = comm.rank();
  Buffer buf(c.dtype, c.count);
  const Block mine = block_of(c.count, n, me);
  for (size_t i = 0; i < c.count; ++i) {
    bool contributes = true;
    if (c.kind == OpKind::AllGather) contributes = i >= mine.offset && i < mine.offset + mine.count;
    if (c.kind == OpKind::Broadcast) contributes = me == c.root;
    buf.set(i, contributes ? input(me, i, salt) : kGarbage);
  }
  c.data = buf.data();
  comm.run(c, algo);
  size_t first = 0, last = c.count;
  if (c.kind == OpKind::ReduceScatter) first = mine.offset, last = mine.offset + mine.count;
  for (size_t i = first; i < last; ++i) {
    float want = 0;
    switch (c.kind) {
      case OpKind::AllReduce:
      case OpKind::ReduceScatter: want = reduced(n, i, salt, c); break;
      case OpKind::AllGather: {
        int owner = 0;
        while (i >= block_of(c.count, n, owner).offset + block_of(c.count, n, owner).count) ++owner;
        want = input(owner, i, salt);
        break;
      }
      case OpKind::Broadcast: want = input(c.root, i, salt); break;
    }
    if (buf.get(i) != want)
      return detail::concat(name(c.kind), " ", name(algo), " ", name(c.dtype), " ", name(c.op),
                            " count ", c.count, " root ", c.root, ": element ", i, " is ",
                            buf.get(i), ", expected ", want);
  }
  return {};
}

void record(CheckResult& res, const std::string& failure) {
  ++res.cases;
  if (!failure.empty()) res.failures.push_back(failure);
}

// Every collective on every dtype/op/root that applies, for one algorithm.
void check_algo(Communicator& comm, const CheckOptions& opts, Algo algo, CheckResult& res) {
  int salt = 0;
  for (OpKind kind : opts.ops)
    for (size_t count : opts.counts) {
      ++salt;
      Collective c{kind, nullptr, count};
      switch (kind) {
        case OpKind::AllReduce:
          for (DType t : {DType::F32, DType::BF16})
            for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
              if (t == DType::BF16 && algo == Algo::Native) continue;  // no MPI bf16 reduction
              c.dtype = t;
              c.op = op;
              record(res, check_one(comm, c, algo, salt));
            }
          break;
        case OpKind::ReduceScatter:
          for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
            c.op = op;
            record(res, check_one(comm, c, algo, salt));
          }
          break;
        case OpKind::AllGather: record(res, check_one(comm, c, algo, salt)); break;
        case OpKind::Broadcast:
          for (int root : {0, comm.size() - 1}) {
            c.root = root;
            record(res, check_one(comm, c, algo, salt));
          }
          break;
      }
    }
}

// Point to point between every pair (each peer over its own link: Communicator::link_name),
// then every other rank sends to rank 0, which takes the messages as they come (wait_any).
void check_every_pair(Communicator& comm, CheckResult& res) {
  const int n = comm.size(), me = comm.rank();
  auto payload = [](int from, int to) { return std::vector<int32_t>{from, to, from * 1000 + to}; };
  std::string failure;
  for (int step = 1; step < n; ++step) {
    const int to = (me + step) % n, from = (me + n - step) % n;
    const std::vector<int32_t> out = payload(me, to);
    std::vector<int32_t> in(3);
    // Lower ranks send first, so no two blocking calls wait on each other.
    if (me < to) comm.send(out.data(), 12, to);
    comm.recv(in.data(), 12, from);
    if (me >= to) comm.send(out.data(), 12, to);
    if (in != payload(from, me) && failure.empty())
      failure = detail::concat("send/recv from rank ", from, " (over ", comm.link_name(from),
                               "): wrong payload");
  }
  record(res, failure);
  failure.clear();
  if (me != 0) {
    const std::vector<int32_t> out = payload(me, 0);
    comm.send(out.data(), 12, 0);
  } else {
    std::vector<int> waiting;
    for (int r = 1; r < n; ++r) waiting.push_back(r);
    while (!waiting.empty()) {
      const Communicator::Arrival a = comm.wait_any(waiting);
      std::vector<int32_t> in(3);
      comm.recv(in.data(), 12, a.peer);
      if ((a.gone || in != payload(a.peer, 0)) && failure.empty())
        failure = detail::concat("wait_any: wrong message from rank ", a.peer);
      waiting.erase(std::find(waiting.begin(), waiting.end(), a.peer));
    }
  }
  record(res, failure);
}

// All-to-all of pieces of different sizes (some empty): rank s sends rank d (s + 2 d) % 3 x
// `scale` elements input(s, i, 100 + d), and every piece must arrive whole, in rank order.
std::string check_all_to_all(Communicator& comm, size_t scale) {
  const int n = comm.size(), me = comm.rank();
  auto piece = [&](int s, int d) { return static_cast<size_t>((s + 2 * d) % 3) * scale; };
  std::vector<size_t> send_counts(n), recv_counts(n);
  std::vector<float> send;
  size_t total = 0;
  for (int p = 0; p < n; ++p) {
    send_counts[p] = piece(me, p);
    recv_counts[p] = piece(p, me);
    total += recv_counts[p];
    for (size_t i = 0; i < send_counts[p]; ++i) send.push_back(input(me, i, 100 + p));
  }
  std::vector<float> recv(total, -1.0f);
  comm.all_to_all_v(send.data(), send_counts, recv.data(), recv_counts);
  size_t at = 0;
  for (int s = 0; s < n; ++s)
    for (size_t i = 0; i < recv_counts[s]; ++i, ++at)
      if (recv[at] != input(s, i, 100 + me))
        return detail::concat("all_to_all_v: piece scale ", scale, ": element ", i,
                              " from rank ", s, " wrong");
  return "";
}

// Sub-groups (even/odd ranks, reversed order), async all-reduce, send/recv around a ring and
// between every pair, all-to-all.
void check_extras(Communicator& comm, const CheckOptions& opts, CheckResult& res) {
  const int n = comm.size(), me = comm.rank();
  auto sub = comm.split(me % 2, n - me, "parity");
  // In the sub-group the ranks are ordered by key n - me, i.e. reversed.
  int expect_rank = 0;
  for (int r = n - 1; r > me; --r) expect_rank += (r % 2 == me % 2);
  if (sub->rank() != expect_rank)
    res.failures.push_back(detail::concat("split: rank ", me, " got group rank ", sub->rank(),
                                          ", expected ", expect_rank));
  for (Algo algo : opts.algos) check_algo(*sub, {{OpKind::AllReduce}, {}, {1, 1001}}, algo, res);

  const size_t count = 100003;
  std::vector<float> a(count), b(count);
  for (size_t i = 0; i < count; ++i) a[i] = input(me, i, 1), b[i] = input(me, i, 2);
  auto wa = comm.allreduce_async(a.data(), count, ReduceOp::Sum);
  auto wb = comm.allreduce_async(b.data(), count, ReduceOp::Avg);
  wa->wait();
  wb->wait();
  Collective sum{OpKind::AllReduce, nullptr, count}, avg = sum;
  avg.op = ReduceOp::Avg;
  std::string failure;
  for (size_t i = 0; i < count && failure.empty(); ++i)
    if (a[i] != reduced(n, i, 1, sum) || b[i] != reduced(n, i, 2, avg))
      failure = detail::concat("allreduce_async: element ", i, " wrong");
  record(res, failure);

  if (n > 1) {
    std::vector<int32_t> out(5 + me), in(5 + (me + n - 1) % n);
    for (size_t i = 0; i < out.size(); ++i) out[i] = me * 1000 + static_cast<int>(i);
    const int next = (me + 1) % n, prev = (me + n - 1) % n;
    // Even ranks send first so the blocking pairs never wait on each other in a cycle.
    if (me % 2 == 0) {
      comm.send(out.data(), out.size() * 4, next);
      comm.recv(in.data(), in.size() * 4, prev);
    } else {
      comm.recv(in.data(), in.size() * 4, prev);
      comm.send(out.data(), out.size() * 4, next);
    }
    failure.clear();
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i] != prev * 1000 + static_cast<int>(i)) failure = "send/recv: wrong payload";
    record(res, failure);
    check_every_pair(comm, res);
  }
  for (size_t scale : {1, 1001, 65537}) record(res, check_all_to_all(comm, scale));
  comm.barrier();
}

// Rank r's element i for the float comparison: a non-integer in (-1, 1), so sums round.
float random_input(int rank, size_t i) {
  uint64_t x = (static_cast<uint64_t>(rank) << 40) ^ (i * 0x9E3779B97F4A7C15ull);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<float>(static_cast<double>(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

// The two-level collectives against the flat ones on float inputs (f32, sum and avg): sums taken
// in another order may differ by rounding, at most 2 n FLT_EPSILON sum_r |x_r| per element
// (each order's error is bounded by (n-1) eps sum|x|); all-gather and broadcast move bytes and
// must be identical.
std::string check_one_against_flat(Communicator& comm, Collective c, Algo algo) {
  const int n = comm.size(), me = comm.rank();
  std::vector<float> two_level(c.count), flat(c.count);
  for (size_t i = 0; i < c.count; ++i) two_level[i] = random_input(me, i);
  flat = two_level;
  c.data = two_level.data();
  comm.run(c, algo);
  comm.set_topology(Topology::Flat);
  c.data = flat.data();
  comm.run(c, algo);
  comm.set_topology(Topology::Hierarchical);
  const Block mine = block_of(c.count, n, me);
  const bool reduces = c.kind == OpKind::AllReduce || c.kind == OpKind::ReduceScatter;
  const size_t first = c.kind == OpKind::ReduceScatter ? mine.offset : 0;
  const size_t last = c.kind == OpKind::ReduceScatter ? mine.offset + mine.count : c.count;
  for (size_t i = first; i < last; ++i) {
    float magnitude = 0;
    for (int r = 0; r < n; ++r) magnitude += std::fabs(random_input(r, i));
    const float tolerance = reduces ? 2.0f * static_cast<float>(n) * FLT_EPSILON * magnitude : 0;
    if (!(std::fabs(two_level[i] - flat[i]) <= tolerance))
      return detail::concat("hierarchical vs flat: ", name(c.kind), " ", name(algo), " ",
                            name(c.op), " count ", c.count, " root ", c.root, ": element ", i,
                            " is ", two_level[i], ", flat gives ", flat[i], " (tolerance ",
                            tolerance, ")");
  }
  return {};
}

void check_against_flat(Communicator& comm, const CheckOptions& opts, Algo algo,
                        CheckResult& res) {
  for (OpKind kind : opts.ops)
    for (size_t count : opts.counts) {
      Collective c{kind, nullptr, count};
      switch (kind) {
        case OpKind::AllReduce:
        case OpKind::ReduceScatter:
          for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
            c.op = op;
            record(res, check_one_against_flat(comm, c, algo));
          }
          break;
        case OpKind::AllGather: record(res, check_one_against_flat(comm, c, algo)); break;
        case OpKind::Broadcast:
          for (int root : {0, comm.size() - 1}) {
            c.root = root;
            record(res, check_one_against_flat(comm, c, algo));
          }
          break;
      }
    }
}

}  // namespace

CheckResult run_check(Communicator& comm, const CheckOptions& opts) {
  CheckResult res;
  for (Algo algo : opts.algos) {
    check_algo(comm, opts, algo, res);
    if (comm.hierarchical() && algo != Algo::Native) check_against_flat(comm, opts, algo, res);
  }
  if (opts.subgroups) check_extras(comm, opts, res);
  return res;
}

}  // namespace loom::comm
