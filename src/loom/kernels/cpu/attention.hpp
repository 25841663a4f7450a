#pragma once
// Causal multi-head self-attention on a fused q,k,v tensor, one (batch, head) pair per task;
// the per-head products are kernels::matmul calls on strided views of qkv (no copies), so they
// run in bf16 under a bf16 MatmulPrecisionScope like every other GEMM.
#include <cstddef>
#include <cstdint>

namespace loom::kernels {

struct AttentionShape {
  int B, Tn, C, H;  // batch, sequence length, channels, heads (head size C / H)
};

// Scratch (elements) that attention_forward/backward need with `threads` OpenMP threads.
size_t attention_scratch_size(const AttentionShape& s, int threads);

// qkv   (B, T, 3C): [q | k | v], head h at columns h*hs .. h*hs+hs-1 of each third
// out   (B, T, C)  = dropout(softmax(q k^T / sqrt(hs) + causal mask)) @ v, heads concatenated
// att   (B, H, T, T): saved probabilities before dropout (upper triangle 0)
// mask  (B, H, T, T): dropout keep mask, or nullptr for no dropout (p ignored)
template <typename T>
void attention_forward(T* out, T* att, const T* qkv, const uint8_t* mask, float p,
                       const AttentionShape& s, T* scratch, size_t scratch_size);

// dqkv (B, T, 3C) overwritten with d(loss)/d(qkv), given dout (B, T, C) and the forward's
// qkv, att and mask.
template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* att, const uint8_t* mask,
                        float p, const AttentionShape& s, T* scratch, size_t scratch_size);

}  // namespace loom::kernels
