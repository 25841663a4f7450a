#pragma once
// Causal multi-head self-attention on device memory, fused and memory-efficient (the
// FlashAttention-2 scheme on CUDA cores): scores and probabilities live only in registers and
// shared memory, so nothing of size B x H x T x T is ever stored. Twin of
// kernels/cpu/attention.hpp with two deliberate differences in the saved state:
//   - instead of the probabilities att (B, H, T, T) the forward saves lse (B, H, T), the
//     log-sum-exp of each score row; the backward recomputes the probabilities from it;
//   - instead of a dropout mask (B, H, T, T) both directions regenerate the keep bits from
//     `seed`: element ((b*H + h)*T + i)*T + j keeps exactly when the CPU's
//     dropout_mask(mask, B*H*T*T, p, seed) sets mask[that index] (dropout_hash.cuh), so the two
//     implementations compute the same function.
// Head sizes 32 and 64 (every GPT-2 size has 64) are compiled; others are refused.
#include <cstdint>

#include "loom/kernels/cpu/attention.hpp"  // AttentionShape

namespace loom::kernels::cuda {

using kernels::AttentionShape;

// qkv (B, T, 3C): [q | k | v], head h at columns h*hs .. h*hs+hs-1 of each third
// out (B, T, C)  = dropout(softmax(q k^T / sqrt(hs) + causal mask)) @ v, heads concatenated
// lse (B, H, T)  = log sum_j exp(q_i k_j / sqrt(hs)) over j <= i, saved for the backward
// p = 0: no dropout (seed ignored).
void attention_forward(float* out, float* lse, const float* qkv, float p, uint64_t seed,
                       const AttentionShape& s);

// dqkv (B, T, 3C) overwritten with d(loss)/d(qkv), given dout (B, T, C) and the forward's qkv,
// out, lse and (p, seed). Deterministic: no atomics (dk/dv per key and dq per query are each
// accumulated by one thread).
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, float p, uint64_t seed, const AttentionShape& s);

}  // namespace loom::kernels::cuda
