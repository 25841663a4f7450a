#pragma once
// The one way Loom multiplies matrices: CBLAS (sgemm/dgemm), row-major.
namespace loom::kernels {

// C[M,N] = alpha * op(A) @ op(B) + beta * C, all row-major with leading dimensions lda/ldb/ldc.
// op(A) is [M,K] (A stored [K,M] when trans_a), op(B) is [K,N] (B stored [N,K] when trans_b).
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
          const T* B, int ldb, T beta, T* C, int ldc);

// While alive, BLAS calls run single-threaded: for regions where OpenMP threads each issue
// their own small GEMMs (per attention head). OpenBLAS's pthread server serves one caller at a
// time, so concurrent multi-threaded calls would queue and spin instead of running in parallel.
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
