#pragma once
// Vocabulary shared by the communicator, its algorithms and its transports.
#include <cstddef>
#include <cstdint>
#include <string>

namespace loom::comm {

enum class DType { F32, BF16 };
enum class ReduceOp { Sum, Avg };
// Ring, Tree, Naive are ours (algorithms/ over a Transport); Native is the backend's own
// collective (MPI_Iallreduce, ...), available only where the backend has one.
enum class Algo { Ring, Tree, Naive, Native };
enum class OpKind { AllReduce, ReduceScatter, AllGather, Broadcast };

size_t dtype_size(DType t);
const char* name(DType t);
const char* name(ReduceOp op);
const char* name(Algo a);
const char* name(OpKind k);
Algo parse_algo(const std::string& s);
OpKind parse_op(const std::string& s);
DType parse_dtype(const std::string& s);
ReduceOp parse_reduce_op(const std::string& s);

// The part of a `count`-element buffer that group rank `rank` of `size` owns in reduce-scatter
// and all-gather: contiguous blocks, the first count % size of them one element longer, so any
// count works (blocks may be empty when count < size).
struct Block {
  size_t offset;
  size_t count;
};
Block block_of(size_t count, int size, int rank);

// One collective call. All collectives are in place on `data` (count elements of dtype):
//   AllReduce     every rank ends with the reduction of all ranks' buffers.
//   ReduceScatter rank r ends with the reduction of block_of(count, size, r); the rest of its
//                 buffer is unspecified afterwards.
//   AllGather     rank r contributes block_of(count, size, r); every rank ends with all blocks.
//   Broadcast     every rank ends with `root`'s buffer.
struct Collective {
  OpKind kind;
  void* data;
  size_t count;
  DType dtype = DType::F32;
  ReduceOp op = ReduceOp::Sum;
  int root = 0;
};

}  // namespace loom::comm
