#pragma once
// The planner's cost model: seconds per sequence of seq_len tokens for each part of a GPT, split
// into F, B (input gradient) and W (weight gradient), timed once on this machine through the
// public model API, and activation bytes per part mirroring the model's activation plan.
#include <array>

#include "loom/model/gpt_config.hpp"
#include "loom/model/kernel_profile.hpp"

namespace loom::planner {

struct PartTime {
  double f = 0, b = 0, w = 0;
  double total() const { return f + b + w; }
};

struct KernelCosts {
  int seq = 0;       // tokens per sequence the times are for
  int threads = 1;   // threads per rank they were measured with
  PartTime block;    // one transformer block
  double block_attention_f = 0;  // of block.f: the attention kernel (what selective recomputes)
  PartTime embedding;
  PartTime head;     // ln_f + LM head + cross-entropy
  double adamw_s_per_param = 0;
};

// What one calibration measured: each kernel's time per sequence (the fastest of the profiled
// steps) of a 2-block copy of a model of shape (d_model, n_head, vocab_size) on `seq` tokens with
// `threads` threads, the fastest whole step and AdamW's time per parameter.
struct KernelTimes {
  int d_model = 0, n_head = 0, vocab_size = 0, seq = 0;  // the shape timed
  int threads = 1;
  std::array<double, KernelProfile::kNum> forward_s{}, backward_s{};
  double step_s = 0;  // forward + backward, with what the profile does not cover
  double adamw_s_per_param = 0;
};

// A KernelTimes naming the shape (model's width, heads and vocabulary, seq, threads), no times
// yet: what time_kernels fills and what a calibration cache is keyed by.
KernelTimes shape_to_time(const GPTConfig& model, int seq, int threads);

// Times a 2-block copy of `model` (same width, heads, vocabulary) on one sequence of `seq`
// tokens with `threads` threads: forward + backward with a per-kernel profile (attention,
// matmuls, ...; each kernel's fastest of `profiled_steps` steps). Plus AdamW steps.
KernelTimes time_kernels(const GPTConfig& model, int seq, int threads, int profiled_steps = 5);

// The costs of `model` on `seq` tokens from kernel times of any shape, each kernel's time
// scaled by its work (extrapolated by FLOPs): the linear layers by T x C^2 (the LM head by
// T x C x V), attention by T^2 x C, the softmax cross-entropy by T x V, the element-wise kernels
// by T x C. Split into parts: the weight-gradient GEMMs (half of each linear's backward) and the
// embedding's whole backward count as W, the rest as B. Exact (no scaling) when the shapes agree.
KernelCosts kernel_costs(const KernelTimes& times, const GPTConfig& model, int seq);

// kernel_costs(time_kernels(model, seq, threads), model, seq): the full shape timed.
KernelCosts calibrate_kernel_costs(const GPTConfig& model, int seq, int threads);

// The shape `loom plan` times for `model` on `seq` tokens: the model's own when one step of its
// 2-block copy is cheap (at most ~2e10 FLOPs), else a scaled-down one (width 256 in 4 heads, at
// most 256 tokens, a vocabulary of at most 4096) whose times kernel_costs() extrapolates.
// Returns the copy (2 blocks) and sets `calibration_seq`.
GPTConfig calibration_model(const GPTConfig& model, int seq, int* calibration_seq);

}  // namespace loom::planner
