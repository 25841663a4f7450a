#pragma once
// What the pipeline runtime needs from a model chunk (one virtual stage): a forward from an
// input activation and a backward split in two, B (to the input, on the critical path) and W (to
// the weights, movable into bubbles). A chunk keeps what its backward needs per micro-batch and
// frees it once W has run; it reads its own micro-batch data (tokens, targets) by index.
#include <cstddef>
#include <memory>
#include <vector>

namespace loom::pipeline {

class StageChunk {
 public:
  virtual ~StageChunk() = default;
  // Floats of the activation entering / leaving the chunk per micro-batch; 0 for the model's
  // first chunk's input (it reads tokens) and its last chunk's output (it computes the loss).
  virtual size_t input_size() const = 0;
  virtual size_t output_size() const = 0;

  // input: input_size() floats, or null on the first chunk; output: output_size() floats, or
  // null on the last (which computes and keeps the micro-batch's loss).
  virtual void forward(int mb, const float* input, float* output) = 0;
  // grad_output: the gradient of the output (null on the last chunk, which starts from its
  // loss); grad_input: where the gradient of the input goes (null on the first chunk).
  virtual void backward_input(int mb, const float* grad_output, float* grad_input) = 0;
  // Adds the micro-batch's parameter gradients; frees its activations.
  virtual void backward_weights(int mb) = 0;
  // B and W at once (what GPipe and 1F1B run); a chunk may fuse them.
  virtual void backward(int mb, const float* grad_output, float* grad_input) {
    backward_input(mb, grad_output, grad_input);
    backward_weights(mb);
  }
};

// The chunks a stage owns, as run_pipeline_step takes them.
template <typename Chunk>
std::vector<StageChunk*> chunk_pointers(const std::vector<std::unique_ptr<Chunk>>& chunks) {
  std::vector<StageChunk*> out;
  for (const auto& c : chunks) out.push_back(c.get());
  return out;
}

}  // namespace loom::pipeline
