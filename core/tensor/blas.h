/* The one door to OpenBLAS: every matrix product of the project goes through blas_sgemm, so the
 * BLAS choice, threading and any future replacement live in blas.c alone. Row-major float32 only.
 * Threading: blas_sgemm splits a large product over the OpenMP threads itself (one single-threaded
 * OpenBLAS call per slab), and inside an active `omp parallel` region runs on the calling thread
 * (so per-head attention products can be spread over the pool by the caller). */
#ifndef HDLM_BLAS_H
#define HDLM_BLAS_H

/* C(M,N) = alpha*op(A)*op(B) + beta*C, row-major; op = transpose when ta/tb != 0.
 * op(A) is (M,K), op(B) is (K,N); lda/ldb/ldc = row strides of A, B, C as stored.
 * beta == 0 means C is not read (NaNs in C do not propagate). */
void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);
/* The naive triple loop (double accumulation) with identical semantics: the reference for tests. */
void blas_sgemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc);
/* Sets both OpenBLAS's and OpenMP's thread counts (n >= 1). */
void blas_set_threads(int n);
int blas_get_threads(void);
/* e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64; core SkylakeX;
 * openmp". Points at a static buffer (rebuilt on each call; do not call concurrently). */
const char *blas_info(void);

#endif
