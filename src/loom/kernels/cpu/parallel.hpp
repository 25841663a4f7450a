#pragma once
// When an OpenMP loop is worth its threads. Waking a sleeping worker costs microseconds (and far
// more when the cores are busy with other processes), so loops over small tensors, as in the
// tiny models of the tests or in generation, run on the calling thread:
//   #pragma omp parallel for if (worth_threads(n))
#include <cstddef>

namespace loom::kernels {

inline bool worth_threads(size_t elements) { return elements >= (size_t{1} << 16); }

}  // namespace loom::kernels
