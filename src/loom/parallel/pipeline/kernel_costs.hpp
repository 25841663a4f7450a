#pragma once
// The planner's cost model: seconds per sequence of seq_len tokens for each part of a GPT, split
// into F, B (input gradient) and W (weight gradient), timed once on this machine through the
// public model API, and activation bytes per part mirroring the model's activation plan.
#include "loom/model/gpt_config.hpp"

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

// Times a 2-block copy of `model` (same width, heads, vocabulary) on one sequence of `seq`
// tokens with `threads` threads: forward + backward with a per-kernel profile (attention,
// matmuls, ...; each kernel's fastest of 5 steps), split into parts; backward of the
// weight-gradient GEMMs (half of each linear's backward) and the embedding's whole backward
// count as W, the rest as B. Plus AdamW steps.
KernelCosts calibrate_kernel_costs(const GPTConfig& model, int seq, int threads);

}  // namespace loom::planner
