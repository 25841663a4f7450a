#pragma once
// `loom plan`'s kernel times, measured once per machine and kept in a cache file
// ($XDG_CACHE_HOME/loom/calibration.json, else ~/.cache/loom/calibration.json), one entry per key
// of the CPU model, the threads and the shape timed. An unreadable, corrupt or implausible cache
// is never trusted: it is ignored with a warning and written again.
#include <functional>
#include <optional>
#include <string>

#include "loom/parallel/pipeline/kernel_costs.hpp"

namespace loom::planner {

// The cache file's path ("" when neither XDG_CACHE_HOME nor HOME is set: no cache).
std::string calibration_cache_path();

// "cpu=<model name>|threads=2|d_model=256|n_head=4|vocab=4096|seq=256".
std::string calibration_key(const KernelTimes& shape_and_threads);

// The entry under `key` in the cache at `path`; nullopt when there is none, or when the file
// cannot be read or holds something else than cached kernel times (then `warning` says why).
std::optional<KernelTimes> read_cached_times(const std::string& path, const std::string& key,
                                             std::string* warning);

// Adds (or replaces) the entry under `key`, keeping the file's other valid entries; written to a
// temporary file renamed over the cache. Returns "" or why it could not write (not fatal).
std::string write_cached_times(const std::string& path, const std::string& key,
                               const KernelTimes& times);

// The kernel times of `model` (its 2-block copy) on `seq` tokens with `threads` threads: from the
// cache at `cache_path` when it holds them (and not `remeasure`), else measured (each kernel's
// fastest of kCalibrationSteps steps: the cache keeps what it measures, so it measures well)
// and stored there ("": no cache). `note` gets one line per event (cache hit, timing, a cache
// ignored or not written).
constexpr int kCalibrationSteps = 15;
KernelTimes cached_kernel_times(const GPTConfig& model, int seq, int threads,
                                const std::string& cache_path, bool remeasure,
                                const std::function<void(const std::string&)>& note);

}  // namespace loom::planner
