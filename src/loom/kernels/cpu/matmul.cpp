#include "loom/kernels/cpu/matmul.hpp"

#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "loom/core/check.hpp"
#include "loom/kernels/cpu/bf16_operands.hpp"
#include "loom/kernels/cpu/matmul_onednn.hpp"

namespace loom::kernels {

namespace {

// Per thread: a scope on one thread leaves the others' products alone. A parallel region inside
// a scope hands it to its workers (AdoptMatmulMode).
thread_local MatmulMode t_mode;

void openblas_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// An operand already rounded to bf16 (by a RoundedOnce): its rows and their stride.
struct Rounded {
  const bf16* data = nullptr;
  int ld = 0;
};

// Rounds both operands to bf16 (dense copies; a ConstOperand from the weight cache; an operand
// given as `a16`/`b16` is used as it is) and runs oneDNN's bf16 product with float accumulation.
void bf16_matmul(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc, ConstOperand constant,
                 bool cache_weights, Rounded a16 = {}, Rounded b16 = {}) {
  // Stored shapes: A is [M,K] ([K,M] when ta), B is [K,N] ([N,K] when tb).
  const int a_rows = ta ? K : M, a_cols = ta ? M : K;
  const int b_rows = tb ? N : K, b_cols = tb ? K : N;
  const bool a_const = constant == ConstOperand::kA, b_const = constant == ConstOperand::kB;
  if (a16.data == nullptr) {
    a16 = {a_const && cache_weights ? cached_bf16(A, a_rows, a_cols, lda)
                                    : scratch_bf16(0, A, a_rows, a_cols, lda, a_const),
           a_cols};
  }
  if (b16.data == nullptr) {
    b16 = {b_const && cache_weights ? cached_bf16(B, b_rows, b_cols, ldb)
                                    : scratch_bf16(1, B, b_rows, b_cols, ldb, b_const),
           b_cols};
  }
  onednn::matmul(true, ta, tb, M, N, K, alpha, a16.data, a16.ld, b16.data, b16.ld, beta, C, ldc);
}

bool bf16_active(int M, int N, int K) {
  return t_mode.precision == MatmulPrecision::kBF16 && M > 0 && N > 0 && K > 0;
}

// K == 0: the product is empty, C = beta * C (a BLAS convention that oneDNN does not handle).
void scale_only(int M, int N, float beta, float* C, int ldc) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) C[static_cast<size_t>(m) * ldc + n] *= beta;
}

}  // namespace

// oneDNN by default: on the GPT-2 shapes its f32 measured as fast as OpenBLAS's AVX-512 kernels
// (`loom bench gemm`), and it selects its kernels from the CPU's features by itself, where
// Debian's OpenBLAS needs OPENBLAS_CORETYPE set before it loads. LOOM_F32_MATMUL=openblas
// selects OpenBLAS (for comparisons).
MatmulBackend f32_backend() {
  static const MatmulBackend backend = [] {
    const char* env = std::getenv("LOOM_F32_MATMUL");
    if (env == nullptr || std::strcmp(env, "onednn") == 0) return MatmulBackend::kOneDNN;
    if (std::strcmp(env, "openblas") == 0) return MatmulBackend::kOpenBLAS;
    LOOM_FAIL("LOOM_F32_MATMUL: expected onednn or openblas, got \"", env, "\"");
  }();
  return backend;
}

void matmul_with(MatmulBackend backend, MatmulPrecision p, bool ta, bool tb, int M, int N, int K,
                 float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                 float* C, int ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_only(M, N, beta, C, ldc);
  if (p == MatmulPrecision::kBF16) {
    LOOM_CHECK(backend == MatmulBackend::kOneDNN, "bf16 matmul needs the oneDNN backend");
    return bf16_matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ConstOperand::kNone,
                       false);
  }
  if (backend == MatmulBackend::kOpenBLAS) {
    return openblas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  onednn::matmul(false, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void matmul<float>(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc, ConstOperand constant) {
  if (bf16_active(M, N, K)) {
    return bf16_matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, constant,
                       t_mode.cache_weights);
  }
  matmul_with(f32_backend(), MatmulPrecision::kF32, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta,
              C, ldc);
}


template <>
void matmul<double>(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                    const double* B, int ldb, double beta, double* C, int ldc, ConstOperand) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
RoundedView<T> RoundedView<T>::at(size_t r, size_t c) const {
  RoundedView v = *this;
  v.data = data + r * ld + c;
  if (rounded != nullptr) v.rounded = static_cast<const bf16*>(rounded) + r * rounded_ld + c;
  return v;
}

template <typename T>
RoundedOnce<T>::RoundedOnce(const T* src, int rows, int cols, int ld) : view_{src, ld} {
  if constexpr (std::is_same_v<T, float>) {
    if (bf16_active(rows, cols, 1)) {
      view_.rounded = rounded_once_bf16(src, rows, cols, ld, &view_.rounded_ld);
    }
  }
}

template <typename T>
RoundedOnce<T>::~RoundedOnce() {
  if (view_.rounded != nullptr) release_rounded_once();
}

template struct RoundedView<float>;
template struct RoundedView<double>;
template class RoundedOnce<float>;
template class RoundedOnce<double>;

template <typename T>
void matmul(bool ta, bool tb, int M, int N, int K, T alpha, const RoundedView<T>& A,
            const RoundedView<T>& B, T beta, T* C, int ldc, ConstOperand constant) {
  LOOM_CHECK(!(constant == ConstOperand::kA && A.rounded != nullptr) &&
                 !(constant == ConstOperand::kB && B.rounded != nullptr),
             "matmul: an operand rounded beforehand is not a constant");
  if constexpr (std::is_same_v<T, float>) {
    if ((A.rounded != nullptr || B.rounded != nullptr) && bf16_active(M, N, K)) {
      return bf16_matmul(ta, tb, M, N, K, alpha, A.data, A.ld, B.data, B.ld, beta, C, ldc,
                         constant, t_mode.cache_weights,
                         {static_cast<const bf16*>(A.rounded), A.rounded_ld},
                         {static_cast<const bf16*>(B.rounded), B.rounded_ld});
    }
  }
  matmul<T>(ta, tb, M, N, K, alpha, A.data, A.ld, B.data, B.ld, beta, C, ldc, constant);
}

template <typename T>
void matmul(bool ta, bool tb, int M, int N, int K, T alpha, const RoundedView<T>& A, const T* B,
            int ldb, T beta, T* C, int ldc, ConstOperand constant) {
  LOOM_CHECK(constant != ConstOperand::kA, "matmul: a RoundedView operand is not a constant");
  matmul<T>(ta, tb, M, N, K, alpha, A, RoundedView<T>{B, ldb}, beta, C, ldc, constant);
}

template <typename T>
void matmul(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda,
            const RoundedView<T>& B, T beta, T* C, int ldc, ConstOperand constant) {
  LOOM_CHECK(constant != ConstOperand::kB, "matmul: a RoundedView operand is not a constant");
  matmul<T>(ta, tb, M, N, K, alpha, RoundedView<T>{A, lda}, B, beta, C, ldc, constant);
}

#define LOOM_INSTANTIATE(T)                                                                    \
  template void matmul<T>(bool, bool, int, int, int, T, const RoundedView<T>&,                 \
                          const RoundedView<T>&, T, T*, int, ConstOperand);                    \
  template void matmul<T>(bool, bool, int, int, int, T, const RoundedView<T>&, const T*, int, T, \
                          T*, int, ConstOperand);                                              \
  template void matmul<T>(bool, bool, int, int, int, T, const T*, int, const RoundedView<T>&, T, \
                          T*, int, ConstOperand);
LOOM_INSTANTIATE(float)
LOOM_INSTANTIATE(double)
#undef LOOM_INSTANTIATE

MatmulPrecisionScope::MatmulPrecisionScope(MatmulPrecision p, bool cache_weights)
    : saved_(t_mode) {
  if (p == MatmulPrecision::kBF16) new_weight_generation();
  t_mode = {p, cache_weights};
}

MatmulPrecisionScope::~MatmulPrecisionScope() {
  t_mode = saved_;
  // Weight copies made in this scope must not be reused by a later one (parameters change in
  // between).
  new_weight_generation();
}

MatmulMode matmul_mode() { return t_mode; }

MatmulPrecision matmul_precision() { return t_mode.precision; }

AdoptMatmulMode::AdoptMatmulMode(MatmulMode mode) : saved_(t_mode) { t_mode = mode; }

AdoptMatmulMode::~AdoptMatmulMode() { t_mode = saved_; }

bool bf16_matmul_available() {
  const char* env = std::getenv("LOOM_BF16");
  if (env != nullptr && std::strcmp(env, "0") == 0) return false;
  return onednn::cpu_has_bf16();
}

MatmulPrecision resolve_precision(MatmulPrecision requested) {
  f32_backend();  // a bad LOOM_F32_MATMUL fails here, at start-up, not in the first product
  if (requested != MatmulPrecision::kBF16 || bf16_matmul_available()) return requested;
  std::fprintf(stderr, "loom: bf16 matmul unavailable (%s): computing in f32 instead\n",
               onednn::cpu_has_bf16() ? "disabled by LOOM_BF16=0" : "this CPU has no AVX512_BF16");
  return MatmulPrecision::kF32;
}

const char* precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::kBF16 ? "bf16" : "f32";
}

MatmulPrecision parse_precision(const std::string& s, const std::string& what) {
  if (s == "f32" || s == "fp32" || s == "float32") return MatmulPrecision::kF32;
  if (s == "bf16" || s == "bfloat16") return MatmulPrecision::kBF16;
  LOOM_FAIL(what, ": unknown precision \"", s, "\" (expected f32 or bf16)");
}

const char* backend_name(MatmulBackend b) {
  return b == MatmulBackend::kOpenBLAS ? "OpenBLAS" : "oneDNN";
}

BlasSingleThreaded::BlasSingleThreaded() : saved_(openblas_get_num_threads()) {
  if (saved_ != 1) openblas_set_num_threads(1);
}

BlasSingleThreaded::~BlasSingleThreaded() {
  if (saved_ != 1) openblas_set_num_threads(saved_);
}

}  // namespace loom::kernels
