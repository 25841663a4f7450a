#pragma once
// Checkpoints (see ARCHITECTURE.md): one directory per save, <out_dir>/step_XXXXXX, holding
//   model.safetensors      parameters, Hugging Face GPT-2 names and layouts (ParamInfo), F32
//   optimizer.safetensors  AdamW moments "m.<param name>", "v.<param name>" (same shapes, F32)
//                          and "step" (I64, shape []): the optimizer's step count
//   state.json             {"format": "loom-checkpoint", "version": 1, "step", "data": {"epoch",
//                          "samples"}, "rng": {"dropout": [4 x hex]}, "world_size", "tokenizer",
//                          "config": {"model", "train"}, "layout": {"pp", "dp", "tp", under
//                          pp > 1 "stage_blocks" ("2,4"), with --rebalance "rebalanced"},
//                          "files": {"<file>": {"bytes", "fnv1a64"}}}
// The tensors are always whole (any layout saves and loads them: see parallel/tensor_parallel);
// "layout" records the saving run's mesh (--rebalance reads its stage blocks back).
// A save is written to <out_dir>/.tmp-step_XXXXXX, every file and the directory fsynced, then
// renamed into place (atomically exchanged with an existing directory of that name); only then is
// <out_dir>/latest (a one-line file naming the directory) replaced atomically. A crash at any
// point leaves `latest` naming a complete checkpoint. Loading checks sizes and checksums of every
// file, then shapes against the model's layout, before touching any parameter.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loom/model/param_layout.hpp"
#include "loom/optim/adamw.hpp"

namespace loom {

// Where the data stream stands, independent of the world size: the epoch, and the number of
// samples (windows) consumed in it summed over all ranks.
struct DataPosition {
  uint64_t epoch = 0;
  uint64_t samples = 0;
};

struct CheckpointState {
  int64_t step = 0;  // optimizer steps completed
  DataPosition data;
  std::array<uint64_t, 4> dropout_rng{};
  int world_size = 1;
  std::string tokenizer;  // for decoding samples: "gpt2" or "byte"
  nlohmann::json config;  // {"model": .., "train": ..}
  nlohmann::json layout;  // {"pp", "dp", "tp", ...} of the saving run (see above)
};

std::string checkpoint_dir_name(int64_t step);  // "step_000100"

// The three tensors a checkpoint holds per parameter: its value and AdamW's two moments.
enum class CheckpointTensor { Param, M, V };

// Where a checkpoint's whole tensors come from, one at a time, so a save holds at most one
// tensor beyond what the source keeps (a sharded model gathers each tensor when its turn comes;
// see train/sharded_checkpoint_source.hpp).
class CheckpointSource {
 public:
  virtual ~CheckpointSource() = default;
  // Whole tensor `p` (of the checkpoint's layout) of `kind`: a pointer into the source's own
  // memory, or `scratch` (p.numel floats) filled. Called in for_each_checkpoint_tensor's order.
  virtual const float* tensor(CheckpointTensor kind, const ParamInfo& p, float* scratch) = 0;
  virtual int64_t optimizer_step() const = 0;
};

// A source over whole flat buffers in memory (layout offsets), handing out pointers into them.
class BufferCheckpointSource : public CheckpointSource {
 public:
  BufferCheckpointSource(const float* params, const float* m, const float* v, int64_t step)
      : params_(params), m_(m), v_(v), step_(step) {}
  // The optimizer must own the whole flat buffer of `layout`.
  BufferCheckpointSource(const std::vector<ParamInfo>& layout, const float* params,
                         const AdamW& optimizer);
  const float* tensor(CheckpointTensor kind, const ParamInfo& p, float*) override;
  int64_t optimizer_step() const override { return step_; }

 private:
  const float *params_, *m_, *v_;
  int64_t step_;
};

// The order in which a save asks its source for tensors: every parameter (layout order, the
// model file), then m and v of each (the optimizer file). A source whose tensor() is collective
// relies on it: ranks that take part without writing call drain_checkpoint_source.
void for_each_checkpoint_tensor(const std::vector<ParamInfo>& layout,
                                const std::function<void(CheckpointTensor, const ParamInfo&)>& f);
// Asks `source` for every tensor in that order and drops them (the ranks of a collective
// source that do not write).
void drain_checkpoint_source(const std::vector<ParamInfo>& layout, CheckpointSource& source);

// Writes <out_dir>/step_XXXXXX (creating out_dir) and points <out_dir>/latest at it. Returns the
// checkpoint directory.
// = publish_checkpoint(out_dir, write_checkpoint_files(out_dir, {state, layout, source})).
std::string save_checkpoint(const std::string& out_dir, const CheckpointState& state,
                            const std::vector<ParamInfo>& layout, CheckpointSource& source);
// The same from whole flat buffers; the optimizer must own the whole flat buffer.
std::string save_checkpoint(const std::string& out_dir, const CheckpointState& state,
                            const std::vector<ParamInfo>& layout, const float* params,
                            const AdamW& optimizer);

// What a checkpoint holds, wherever it lives (the live model, a sharded model gathered tensor by
// tensor, or a staged copy being written in the background).
struct CheckpointData {
  const CheckpointState& state;
  const std::vector<ParamInfo>& layout;
  CheckpointSource& source;
};
// The two halves of a save. Writes and fsyncs every file into <out_dir>/.tmp-step_XXXXXX (its
// path is returned); nothing else in out_dir changes, so `latest` still names the previous one.
std::string write_checkpoint_files(const std::string& out_dir, const CheckpointData& data);
// Renames that directory to step_XXXXXX and points `latest` at it; returns the new directory.
std::string publish_checkpoint(const std::string& out_dir, const std::string& tmp_dir);

// A checkpoint directory, or a `latest` file (resolved to the directory it names).
std::string resolve_checkpoint(const std::string& path);

// Reads and checks state.json of a checkpoint directory.
CheckpointState read_checkpoint_state(const std::string& dir);

// Verify model.safetensors (size, checksum, every tensor present with the layout's shape, no
// others), then copy it into params.
void load_checkpoint_params(const std::string& dir, const std::vector<ParamInfo>& layout,
                            float* params);
// Same for optimizer.safetensors into the optimizer (moments and step count).
void load_checkpoint_optimizer(const std::string& dir, const std::vector<ParamInfo>& layout,
                               AdamW& optimizer);

// Deletes the oldest step_* directories of out_dir beyond the newest `keep_last` (never the one
// `latest` names). keep_last 0: keeps everything.
void prune_checkpoints(const std::string& out_dir, int keep_last);

}  // namespace loom
