#pragma once
// Asynchronous checkpointing, as PyTorch DCP's async_save: save() blocks the training loop only
// while the state is copied into a staging buffer; writing the files, fsync, the rename and the
// `latest` update (then pruning old checkpoints) run on a background thread. A save waits for the
// previous one to finish first (one staging buffer, reused). A process killed during the
// background write leaves `latest` naming the previous complete checkpoint.
//
// Fault injection for the drills: LOOM_FAULT_KILL_IN_SAVE=<step> makes the writer kill its own
// process (SIGKILL) once the files of that step are written but before they are published.
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "loom/train/checkpoint.hpp"

namespace loom {

class AsyncCheckpointer {
 public:
  // `on_done(dir, seconds)` runs on the writer thread after each successful background write.
  explicit AsyncCheckpointer(std::function<void(const std::string&, double)> on_done = {});
  ~AsyncCheckpointer();  // finishes a write in progress (its errors are dropped)
  AsyncCheckpointer(const AsyncCheckpointer&) = delete;
  AsyncCheckpointer& operator=(const AsyncCheckpointer&) = delete;

  // Copies the state (each tensor from `source`, in for_each_checkpoint_tensor's order, straight
  // into the staging buffer), then writes it in the background; keep_last as prune_checkpoints.
  // Returns the directory the checkpoint will have. Rethrows the previous write's error, if any.
  std::string save(const std::string& out_dir, const CheckpointState& state,
                   const std::vector<ParamInfo>& layout, CheckpointSource& source, int keep_last);
  // Waits for the write in progress; rethrows its error.
  void wait();

 private:
  std::function<void(const std::string&, double)> on_done_;
  std::thread writer_;
  std::exception_ptr error_;
  // The staged copy the writer reads.
  CheckpointState state_;
  std::vector<ParamInfo> layout_;
  std::vector<float> params_, m_, v_;
  int64_t optimizer_step_ = 0;
};

}  // namespace loom
