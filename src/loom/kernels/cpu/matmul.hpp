#pragma once
// The one way Loom multiplies matrices. Row-major, transposed operands given as flags over the
// stored layouts (no copies by the caller):
//   C[M,N] = alpha * op(A) @ op(B) + beta * C
// op(A) is [M,K] (A stored [K,M] when trans_a), op(B) is [K,N] (B stored [N,K] when trans_b),
// leading dimensions lda/ldb/ldc.
//
// float runs at the precision of this thread's innermost live MatmulPrecisionScope (f32 outside
// any):
//   kF32   float inputs, float accumulation (OpenBLAS or oneDNN: see matmul.cpp for which)
//   kBF16  inputs rounded to bfloat16, float accumulation and output (oneDNN's AVX512_BF16
//          kernels), as torch.autocast does it on CPU
// double always runs CBLAS dgemm (the gradient checks need exact double products).
#include <cstddef>
#include <string>

namespace loom::kernels {

enum class MatmulPrecision { kF32, kBF16 };

// An operand that stays unchanged while the current MatmulPrecisionScope lives (a weight). Under
// kBF16 its bfloat16 copy is made on first use in the scope and reused by later products that
// read the same matrix (forward and backward of one step read every weight twice).
enum class ConstOperand { kNone, kA, kB };

template <typename T>
void matmul(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
            const T* B, int ldb, T beta, T* C, int ldc,
            ConstOperand constant = ConstOperand::kNone);
// float: oneDNN or OpenBLAS by the current MatmulMode; double: OpenBLAS (gradient checks).
template <>
void matmul<float>(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                   int lda, const float* B, int ldb, float beta, float* C, int ldc,
                   ConstOperand constant);
template <>
void matmul<double>(bool trans_a, bool trans_b, int M, int N, int K, double alpha,
                    const double* A, int lda, const double* B, int ldb, double beta, double* C,
                    int ldc, ConstOperand constant);

// A float matrix (data, row stride ld) that a product reads, and, where it was rounded to
// bfloat16 beforehand, the same matrix's bf16 copy (rounded, row stride rounded_ld): a kBF16
// product then reads the copy instead of converting data again. at(r, c) views the submatrix
// that starts at row r, column c (of both copies).
template <typename T>
struct RoundedView {
  const T* data = nullptr;
  int ld = 0;
  const void* rounded = nullptr;  // bf16; null: not rounded (f32, or a product rounds it)
  int rounded_ld = 0;

  RoundedView at(size_t r, size_t c) const;
};

// A float matrix src[rows, cols] (row stride ld) that several products read: a layer's output
// gradient, read by both its input-gradient and its weight-gradient product, or the attention's
// q, k, v, read by the products of every row block. Under kBF16 (T = float) it is rounded to
// bf16 once, here, instead of in each product, into a buffer of this thread whose rows are
// padded to a multiple of 64 elements (an odd row length, such as GPT-2's 50257-token
// vocabulary, made oneDNN's bf16 products 10-30% slower). Otherwise it only holds the pointer.
// Up to kMaxRoundedOnce live per thread at a time, destroyed in the reverse order of creation
// (as scopes do); the buffers are kept for the thread's next ones. It must not outlive src's
// contents. Other threads may read it while it lives.
template <typename T>
class RoundedOnce {
 public:
  static constexpr int kMaxRoundedOnce = 4;

  RoundedOnce(const T* src, int rows, int cols, int ld);
  ~RoundedOnce();
  RoundedOnce(const RoundedOnce&) = delete;
  RoundedOnce& operator=(const RoundedOnce&) = delete;

  const T* data() const { return view_.data; }
  int ld() const { return view_.ld; }
  const void* rounded() const { return view_.rounded; }  // bf16 rows of rounded_ld(); or null
  int rounded_ld() const { return view_.rounded_ld; }
  operator RoundedView<T>() const { return view_; }
  RoundedView<T> at(size_t r, size_t c) const { return view_.at(r, c); }

 private:
  RoundedView<T> view_;
};

// matmul with A, or B, or both given as a RoundedView (or RoundedOnce): a kBF16 product reads
// their bf16 copies. `constant` may name a plain pointer operand only.
template <typename T>
void matmul(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const RoundedView<T>& A,
            const RoundedView<T>& B, T beta, T* C, int ldc,
            ConstOperand constant = ConstOperand::kNone);
template <typename T>
void matmul(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const RoundedView<T>& A,
            const T* B, int ldb, T beta, T* C, int ldc,
            ConstOperand constant = ConstOperand::kNone);
template <typename T>
void matmul(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
            const RoundedView<T>& B, T beta, T* C, int ldc,
            ConstOperand constant = ConstOperand::kNone);

// How this thread's float GEMMs run: the innermost live MatmulPrecisionScope's settings.
struct MatmulMode {
  MatmulPrecision precision = MatmulPrecision::kF32;
  bool cache_weights = true;
};

// Sets this thread's float GEMMs' precision until destroyed, then restores the previous setting;
// other threads keep their own. Parameters must not change while a kBF16 scope lives (its weight
// copies would go stale): scope forward + backward, not the optimizer step.
// cache_weights = false converts ConstOperands on every use instead (autocast without its cache).
class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision p, bool cache_weights = true);
  ~MatmulPrecisionScope();
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulMode saved_;
};

MatmulMode matmul_mode();
MatmulPrecision matmul_precision();  // matmul_mode().precision

// Runs this thread's float GEMMs in `mode` until destroyed: for each thread of a parallel region
// whose products must follow the scope of the thread that started it (OpenMP workers do not
// inherit it). Unlike a scope it starts no weight generation: the caller's copies stay valid.
//   const MatmulMode mode = matmul_mode();
//   #pragma omp parallel
//   { const AdoptMatmulMode adopt(mode); ... matmul ... }
class AdoptMatmulMode {
 public:
  explicit AdoptMatmulMode(MatmulMode mode);
  ~AdoptMatmulMode();
  AdoptMatmulMode(const AdoptMatmulMode&) = delete;
  AdoptMatmulMode& operator=(const AdoptMatmulMode&) = delete;

 private:
  MatmulMode saved_;
};

// True when bf16 GEMMs run natively: oneDNN finds AVX512_BF16 (or better) on this CPU, and the
// environment does not force the fallback with LOOM_BF16=0.
bool bf16_matmul_available();
// The precision that will actually run for `requested`: kBF16 without bf16_matmul_available()
// falls back to kF32 and prints one line saying so on stderr. Throws if LOOM_F32_MATMUL is set
// to something other than onednn or openblas.
MatmulPrecision resolve_precision(MatmulPrecision requested);

const char* precision_name(MatmulPrecision p);  // "f32", "bf16"
// "f32"/"fp32"/"float32" or "bf16"/"bfloat16"; anything else throws loom::Error naming `what`
// (a flag or file) and the accepted values.
MatmulPrecision parse_precision(const std::string& s, const std::string& what);

// Thread-seconds spent rounding GEMM operands to bf16 since start-up (for `loom bench train`):
// weights (ConstOperands) and the other operands (activations and their gradients).
struct Bf16ConversionTime {
  double weights_s = 0, others_s = 0;
};
Bf16ConversionTime bf16_conversion_time();

// One float GEMM on an explicit implementation, for `loom bench gemm` and the tests.
enum class MatmulBackend { kOpenBLAS, kOneDNN };
const char* backend_name(MatmulBackend b);
// kOpenBLAS supports only kF32. Ignores the scope.
void matmul_with(MatmulBackend backend, MatmulPrecision p, bool trans_a, bool trans_b, int M,
                 int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc);
// The implementation that kF32 float GEMMs use.
MatmulBackend f32_backend();

// While alive, BLAS calls run single-threaded: for regions where OpenMP threads each issue
// their own small GEMMs (per attention head). OpenBLAS's pthread server serves one caller at a
// time, so concurrent multi-threaded calls would queue and spin instead of running in parallel.
// (oneDNN runs single-threaded inside a parallel region by itself.)
class BlasSingleThreaded {
 public:
  BlasSingleThreaded();
  ~BlasSingleThreaded();
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int saved_;
};

}  // namespace loom::kernels
