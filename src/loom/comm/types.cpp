#include "loom/comm/types.hpp"

#include "loom/core/check.hpp"

namespace loom::comm {

size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }

const char* name(DType t) { return t == DType::F32 ? "f32" : "bf16"; }
const char* name(ReduceOp op) { return op == ReduceOp::Sum ? "sum" : "avg"; }

const char* name(Algo a) {
  switch (a) {
    case Algo::Ring: return "ring";
    case Algo::Tree: return "tree";
    case Algo::Naive: return "naive";
    case Algo::Native: return "native";
  }
  return "?";
}

const char* name(OpKind k) {
  switch (k) {
    case OpKind::AllReduce: return "allreduce";
    case OpKind::ReduceScatter: return "reduce_scatter";
    case OpKind::AllGather: return "allgather";
    case OpKind::Broadcast: return "broadcast";
  }
  return "?";
}

Algo parse_algo(const std::string& s) {
  for (Algo a : {Algo::Ring, Algo::Tree, Algo::Naive, Algo::Native})
    if (s == name(a)) return a;
  LOOM_FAIL("unknown algorithm '", s, "' (expected ring, tree, naive or native)");
}

OpKind parse_op(const std::string& s) {
  for (OpKind k : {OpKind::AllReduce, OpKind::ReduceScatter, OpKind::AllGather, OpKind::Broadcast})
    if (s == name(k)) return k;
  LOOM_FAIL("unknown collective '", s,
            "' (expected allreduce, reduce_scatter, allgather or broadcast)");
}

DType parse_dtype(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  LOOM_FAIL("unknown dtype '", s, "' (expected f32 or bf16)");
}

ReduceOp parse_reduce_op(const std::string& s) {
  if (s == "sum") return ReduceOp::Sum;
  if (s == "avg") return ReduceOp::Avg;
  LOOM_FAIL("unknown reduction '", s, "' (expected sum or avg)");
}

Block block_of(size_t count, int size, int rank) {
  const size_t n = static_cast<size_t>(size), r = static_cast<size_t>(rank);
  const size_t base = count / n, extra = count % n;
  return {r * base + std::min(r, extra), base + (r < extra ? 1 : 0)};
}

}  // namespace loom::comm
