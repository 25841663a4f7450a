#pragma once
#include <memory>
#include <string>

#include "loom/comm/backend.hpp"

namespace loom::comm::shm {

// Attaches to the job's segment `segment_name` (created by world rank 0, see Segment::attach).
std::unique_ptr<Backend> make_shm_backend(const std::string& segment_name, int rank, int world,
                                          Clock::time_point deadline);

}  // namespace loom::comm::shm
