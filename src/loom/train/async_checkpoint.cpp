#include "loom/train/async_checkpoint.hpp"

#include <signal.h>

#include <algorithm>
#include <cstdlib>

#include "loom/core/check.hpp"
#include "loom/core/timer.hpp"
#include "loom/core/trace.hpp"

namespace loom {
namespace {

// LOOM_FAULT_KILL_IN_SAVE: the step whose save is killed half way, or -1.
int64_t fault_step() {
  const char* v = std::getenv("LOOM_FAULT_KILL_IN_SAVE");
  return v ? std::atoll(v) : -1;
}

}  // namespace

AsyncCheckpointer::AsyncCheckpointer(std::function<void(const std::string&, double)> on_done)
    : on_done_(std::move(on_done)) {}

AsyncCheckpointer::~AsyncCheckpointer() {
  if (writer_.joinable()) writer_.join();
}

void AsyncCheckpointer::wait() {
  if (writer_.joinable()) writer_.join();
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

std::string AsyncCheckpointer::save(const std::string& out_dir, const CheckpointState& state,
                                    const std::vector<ParamInfo>& layout, CheckpointSource& source,
                                    int keep_last) {
  wait();
  const size_t n = layout.back().offset + layout.back().numel;
  {
    trace::Scope stage("checkpoint stage", "checkpoint");
    state_ = state;
    layout_ = layout;
    params_.resize(n);
    m_.resize(n);
    v_.resize(n);
    for_each_checkpoint_tensor(layout_, [&](CheckpointTensor kind, const ParamInfo& p) {
      float* to = (kind == CheckpointTensor::Param ? params_ : kind == CheckpointTensor::M ? m_ : v_)
                      .data() + p.offset;
      const float* from = source.tensor(kind, p, to);
      if (from != to) std::copy_n(from, p.numel, to);
    });
    optimizer_step_ = source.optimizer_step();
  }
  writer_ = std::thread([this, out_dir, keep_last] {
    trace::name_thread("checkpoint writer");
    try {
      Timer timer;
      std::string dir;
      {
        trace::Scope write("checkpoint write", "checkpoint");
        BufferCheckpointSource staged(params_.data(), m_.data(), v_.data(), optimizer_step_);
        const std::string tmp = write_checkpoint_files(out_dir, {state_, layout_, staged});
        if (fault_step() == state_.step) raise(SIGKILL);
        dir = publish_checkpoint(out_dir, tmp);
        prune_checkpoints(out_dir, keep_last);
      }
      if (on_done_) on_done_(dir, timer.seconds());
    } catch (...) {
      error_ = std::current_exception();
    }
  });
  return out_dir + "/" + checkpoint_dir_name(state.step);
}

}  // namespace loom
