#pragma once
// How the parameter servers apply the workers' gradients (--ps_mode):
//   sync   a server waits for every worker's push of step t, averages, updates once, then
//          answers: the same training as all-reduce data parallelism at the same global batch;
//   async  every push is applied as it arrives (scaled by 1/workers), the reply carries the
//          newest parameters;
//   ssp    stale-synchronous (Ho et al., NIPS 2013): as async, but a worker may begin its step c
//          only when every live worker has pushed its step c - s - 1 (s = --staleness).
#include <string>

namespace loom::ps {

enum class Mode { kSync, kAsync, kSsp };

// "sync", "async", "ssp"; anything else is an error naming `flag`, the value and the choices.
Mode parse_mode(const std::string& text, const std::string& flag);
const char* mode_name(Mode m);

}  // namespace loom::ps
