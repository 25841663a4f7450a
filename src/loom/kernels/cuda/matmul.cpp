// cuBLASLt behind the row-major interface of matmul.hpp.
//
// cuBLASLt is column-major. A row-major [R, C] matrix with leading dimension ld is the
// column-major [C, R] matrix with the same ld, so the row-major product C = op(A) op(B) is the
// column-major product C^T = op(B)^T op(A)^T: B goes first, A second, and each keeps its
// transpose flag (B stored [K,N] row-major is [N,K] column-major = op(B)^T already).
#include "loom/kernels/cuda/matmul.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <tuple>

#include "loom/core/check.hpp"
#include "loom/device/cuda/runtime.hpp"

namespace loom::kernels::cuda {

namespace {

using device::cuda::compute_stream;
using device::cuda::DeviceArray;

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLAS's recommendation for Hopper

std::atomic<F32Math> g_f32_math{F32Math::kExact};

template <typename T>
constexpr cudaDataType_t data_type() {
  if constexpr (std::is_same_v<T, float>)
    return CUDA_R_32F;
  else
    return CUDA_R_16BF;
}

// The largest power of two (<= 256) dividing the address: cuBLASLt's alignment preference.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

struct Handle {
  cublasLtHandle_t lt = nullptr;
  DeviceArray<std::byte> workspace;
  Handle() : workspace(kWorkspaceBytes) { LOOM_CUDA_CHECK(cublasLtCreate(&lt)); }
  ~Handle() { cublasLtDestroy(lt); }
};

Handle& handle() {
  static Handle h;
  return h;
}

// Everything the algorithm choice depends on.
using PlanKey = std::tuple<bool, bool, int, int, int, int, int, int, int, int, int, uint32_t,
                           uint32_t, uint32_t>;

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

// One plan per shape, made on first use (the heuristic query costs far more than the product);
// a training step reuses the same few dozen shapes.
const Plan& plan_for(const PlanKey& key, cudaDataType_t in_type, cudaDataType_t out_type) {
  static std::mutex mu;
  static std::map<PlanKey, Plan> plans;
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  [[maybe_unused]] const auto [ta, tb, M, N, K, lda, ldb, ldc, math, in_t, out_t, al_a, al_b,
                               al_c] = key;
  Plan p;
  const cublasComputeType_t compute =
      in_type == CUDA_R_32F && math == static_cast<int>(F32Math::kTF32)
          ? CUBLAS_COMPUTE_32F_FAST_TF32
          : CUBLAS_COMPUTE_32F;
  LOOM_CUDA_CHECK(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F));
  // First operand of the column-major product is B, second is A (see the top of this file).
  const cublasOperation_t op_first = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  LOOM_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                 sizeof op_first));
  LOOM_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                 sizeof op_second));
  // Column-major shapes as stored: B is [N,K] (or [K,N] when transposed), A [K,M] (or [M,K]).
  LOOM_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.b, in_type, tb ? K : N, tb ? N : K, ldb));
  LOOM_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.a, in_type, ta ? M : K, ta ? K : M, lda));
  LOOM_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.c, out_type, N, M, ldc));

  cublasLtMatmulPreference_t pref = nullptr;
  LOOM_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = kWorkspaceBytes;
  LOOM_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  for (auto [attr, value] : {std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, al_b},
                             std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, al_a},
                             std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, al_c},
                             std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, al_c}})
    LOOM_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof value));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle().lt, p.desc, p.b, p.a, p.c, p.c,
                                                           pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  LOOM_CUDA_CHECK(st);
  LOOM_CHECK(found > 0, "cuBLASLt has no algorithm for matmul M=", M, " N=", N, " K=", K,
             " trans_a=", ta, " trans_b=", tb, " lda=", lda, " ldb=", ldb, " ldc=", ldc);
  p.algo = result.algo;
  return plans.emplace(key, p).first->second;
}

}  // namespace

F32Math f32_math() { return g_f32_math.load(); }
F32MathScope::F32MathScope(F32Math m) : saved_(g_f32_math.exchange(m)) {}
F32MathScope::~F32MathScope() { g_f32_math.store(saved_); }

template <typename Tin, typename Tout>
void matmul(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const Tin* A, int lda,
            const Tin* B, int ldb, float beta, Tout* C, int ldc) {
  LOOM_CHECK(M >= 0 && N >= 0 && K >= 0, "matmul: negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  LOOM_CHECK(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N,
             "matmul: leading dimension too small (lda=", lda, " ldb=", ldb, " ldc=", ldc, ")");
  const cudaDataType_t in = data_type<Tin>(), out = data_type<Tout>();
  const PlanKey key{trans_a,
                    trans_b,
                    M,
                    N,
                    K,
                    lda,
                    ldb,
                    ldc,
                    static_cast<int>(f32_math()),
                    static_cast<int>(in),
                    static_cast<int>(out),
                    alignment_of(A),
                    alignment_of(B),
                    alignment_of(C)};
  const Plan& p = plan_for(key, in, out);
  Handle& h = handle();
  LOOM_CUDA_CHECK(cublasLtMatmul(h.lt, p.desc, &alpha, B, p.b, A, p.a, &beta, C, p.c, C, p.c,
                                 &p.algo, h.workspace.data(), kWorkspaceBytes, compute_stream()));
}

template void matmul<float, float>(bool, bool, int, int, int, float, const float*, int,
                                   const float*, int, float, float*, int);
template void matmul<__nv_bfloat16, float>(bool, bool, int, int, int, float, const __nv_bfloat16*,
                                           int, const __nv_bfloat16*, int, float, float*, int);
template void matmul<__nv_bfloat16, __nv_bfloat16>(bool, bool, int, int, int, float,
                                                   const __nv_bfloat16*, int, const __nv_bfloat16*,
                                                   int, float, __nv_bfloat16*, int);

}  // namespace loom::kernels::cuda
