#pragma once
// A small real model for exercising the pipeline runtime without the GPT: a stack of dense
// layers h = tanh(x W + b) with a squared-error loss on the last layer, cut into chunks of
// consecutive layers. Weights, inputs and targets depend only on the seed and the layer or
// micro-batch index, so any partition over any number of ranks holds the same model, and the
// pipelined gradients can be compared with a single chunk of all layers run sequentially. Used
// by the runtime's tests and by `loom bench pipeline`.
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "loom/parallel/pipeline/schedule.hpp"
#include "loom/parallel/pipeline/stage.hpp"

namespace loom::pipeline {

struct MlpSpec {
  int width = 64;        // d
  int rows = 8;          // n: rows per micro-batch
  int layers = 4;        // in the whole model
  int micro_batches = 4; // the loss is the mean over them
  uint64_t seed = 1;
};

class MlpChunk : public StageChunk {
 public:
  // Layers [first, last) of the model.
  MlpChunk(const MlpSpec& spec, int first, int last);

  size_t input_size() const override;   // n * d, or 0 when first == 0
  size_t output_size() const override;  // n * d, or 0 when last == layers
  void forward(int mb, const float* input, float* output) override;
  void backward_input(int mb, const float* grad_output, float* grad_input) override;
  void backward_weights(int mb) override;

  // Per layer: W (d x d, row-major [in, out]) then b (d).
  const std::vector<float>& grads() const { return grads_; }
  float* params() { return params_.data(); }  // same layout as grads()
  void zero_grad();
  // Sum over the micro-batches run of each one's share of the loss (last chunk only).
  double loss() const { return loss_; }
  size_t activation_bytes() const;       // held now
  size_t peak_activation_bytes() const { return peak_bytes_; }

 private:
  struct Saved {  // per micro-batch
    std::vector<float> x;   // the input of every layer then the last output: (layers + 1) x n x d
    std::vector<float> dz;  // gradient at every layer's pre-activation, from B, for W
  };
  size_t nd() const { return static_cast<size_t>(spec_.rows) * spec_.width; }
  size_t layer_params() const;
  void note_memory();

  MlpSpec spec_;
  int first_, last_;
  std::vector<float> params_, grads_;
  std::map<int, Saved> saved_;
  double loss_ = 0;
  size_t peak_bytes_ = 0;
};

// The chunks of `stage` under `schedule`: the layers cut evenly over its stages x virtual stages
// (virtual stage g holds layers [g L / S, (g + 1) L / S)).
std::vector<std::unique_ptr<MlpChunk>> make_mlp_chunks(const MlpSpec& spec,
                                                       const Schedule& schedule, int stage);
int first_layer_of(const MlpSpec& spec, const Schedule& schedule, int stage, int chunk);

}  // namespace loom::pipeline
