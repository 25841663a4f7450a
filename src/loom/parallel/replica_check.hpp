#pragma once
// Small collectives the data-parallel trainer needs besides the gradient all-reduce.
#include <cstddef>

#include "loom/comm/communicator.hpp"

namespace loom::parallel {

// Sum of `x` over the ranks, close to double precision: x travels as two floats (x rounded to
// float, and the rounding error), each summed over the ranks. Every rank gets the same value.
double allreduce_sum(comm::Communicator& comm, double x);

// Throws loom::Error unless every rank's params[0, count) are bit-identical (data parallelism
// starts from identical replicas). Compares an FNV-1a hash of the bytes, gathered from all ranks;
// the error names the ranks that differ from rank 0.
void check_identical_replicas(comm::Communicator& comm, const float* params, size_t count);

}  // namespace loom::parallel
