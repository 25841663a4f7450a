#pragma once
// The one way Loom multiplies matrices on the GPU: cuBLASLt, with the interface of
// kernels/cpu/matmul.hpp (row-major, transposes as flags over the stored layouts, leading
// dimensions, alpha/beta), on device pointers:
//   C[M,N] = alpha * op(A) @ op(B) + beta * C
// op(A) is [M,K] (A stored [K,M] when trans_a), op(B) is [K,N] (B stored [N,K] when trans_b).
//
// Input/output types (accumulation is always f32):
//   float x float -> float            exact f32 (the default: for tests) or TF32 tensor cores
//                                     inside an F32MathScope(kTF32)
//   bf16 x bf16   -> float or bf16    bf16 tensor cores, f32 accumulation (mixed precision)
#include <cuda_bf16.h>

#include <cstddef>

namespace loom::kernels::cuda {

template <typename Tin, typename Tout>
void matmul(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const Tin* A, int lda,
            const Tin* B, int ldb, float beta, Tout* C, int ldc);

// How float x float products run (cf. torch.backends.cuda.matmul.allow_tf32).
enum class F32Math { kExact, kTF32 };
F32Math f32_math();

// Sets the float products' math until destroyed, then restores the previous setting.
class F32MathScope {
 public:
  explicit F32MathScope(F32Math m);
  ~F32MathScope();
  F32MathScope(const F32MathScope&) = delete;
  F32MathScope& operator=(const F32MathScope&) = delete;

 private:
  F32Math saved_;
};

// dst[n] = bf16(src[n]) (round to nearest even) and back: the per-step bf16 weight copies.
void to_bf16(__nv_bfloat16* dst, const float* src, size_t n);
void to_f32(float* dst, const __nv_bfloat16* src, size_t n);

}  // namespace loom::kernels::cuda
