#pragma once
// The memory model's prediction (memory_model.hpp) for the ranks of a `loom train` run: the
// most any rank of its layout holds, used to refuse a job that cannot fit the host before any
// rank starts (launch/capacity.hpp).
#include "loom/config/train_config.hpp"

namespace loom {

// Bytes of the most loaded rank of `c` (its nproc, tp, pp, zero, precision, recompute, batch and
// seq_len), with `threads` OpenMP threads per rank; 0 for a layout the model does not predict
// (the interleaved schedule).
double planned_bytes_per_rank(const RunConfig& c, int threads);

}  // namespace loom
