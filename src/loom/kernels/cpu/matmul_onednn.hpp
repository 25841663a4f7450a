#pragma once
// oneDNN matmul primitives behind kernels::matmul (internal to kernels/cpu).
namespace loom::kernels::onednn {

// C[M,N] (float) = alpha * op(A) @ op(B) + beta * C with A and B both float (bf16 = false) or
// both bfloat16 (bf16 = true), accumulation in float. Transposition is expressed as strides, so
// the stored layouts are read in place. One primitive per (shape, strides, types, alpha, beta)
// is created on first use and cached per thread.
void matmul(bool bf16, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void* A,
            int lda, const void* B, int ldb, float beta, float* C, int ldc);

// oneDNN's detected instruction set includes AVX512_BF16 (avx512_core_bf16 or newer).
bool cpu_has_bf16();

}  // namespace loom::kernels::onednn
