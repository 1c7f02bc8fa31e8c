/* blas_sgemm over cblas_sgemm (the only include of <cblas.h> in the project), a naive reference
 * with the same semantics for tests, and thread-count / build-info helpers. No allocation, no
 * error paths: bad shapes are bugs (HDLM_ASSERT). */
#include "tensor/blas.h"

#include "base/error.h"

#include <omp.h>
#include <stdio.h>

#include <cblas.h>

/* Checks the BLAS argument rules once, for both implementations. */
static void blas_check_args(int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc) {
    HDLM_ASSERT(M >= 0 && N >= 0 && K >= 0);
    int acols = ta ? M : K; /* columns of A as stored */
    int bcols = tb ? K : N;
    HDLM_ASSERT(lda >= (acols > 1 ? acols : 1));
    HDLM_ASSERT(ldb >= (bcols > 1 ? bcols : 1));
    HDLM_ASSERT(ldc >= (N > 1 ? N : 1));
}

/* C = beta*C for the K == 0 case (BLAS semantics; also spares OpenBLAS the edge case). */
static void blas_scale_c(int M, int N, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++)
            c[j] = beta == 0.0f ? 0.0f : beta * c[j];
    }
}

/* Below this many multiply-adds a product runs on the calling thread: a parallel region costs a
 * few microseconds. */
#define BLAS_SPLIT_MIN (double)(1 << 18)
/* Slab boundaries on multiples of the micro-kernel's tile, so no slab gets ragged edges twice. */
#define BLAS_SPLIT_ALIGN 16

/* blas_sgemm splits a large product over our own OpenMP threads: two single-threaded OpenBLAS
 * calls on halves of C (OpenBLAS runs one thread inside an active parallel region) reached ~175
 * GFLOP/s on the model's shapes (2048 x 768 x 256 etc.) where OpenBLAS's own 2-thread sgemm reached
 * ~95. OpenBLAS's thread count itself stays as set by blas_set_threads: forcing it to 1 for the
 * whole process made the small products of a narrow model (d 128: per-head 256 x 256 x 32)
 * 1.7x slower (quickstart training 8800 -> 5200 tokens/s). */
static void blas_sgemm_one(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    blas_check_args(ta, tb, M, N, K, lda, ldb, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        blas_scale_c(M, N, beta, C, ldc);
        return;
    }
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt < 2 || (double)M * N * K < BLAS_SPLIT_MIN) {
        blas_sgemm_one(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Split C into nt slabs of whole rows (or of whole columns when it is wide and short); every
     * slab is one single-threaded OpenBLAS call on a contiguous piece of A or B. */
    int by_rows = M >= N || M >= 64 * nt;
    int extent = by_rows ? M : N;
    if (extent < 2 * BLAS_SPLIT_ALIGN) {
        blas_sgemm_one(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int per = (extent + n - 1) / n;
        per = (per + BLAS_SPLIT_ALIGN - 1) / BLAS_SPLIT_ALIGN * BLAS_SPLIT_ALIGN;
        int lo = t * per, hi = lo + per < extent ? lo + per : extent;
        if (lo < hi) {
            if (by_rows) /* rows lo..hi of op(A) and C */
                blas_sgemm_one(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + (size_t)lo * lda,
                               lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
            else /* columns lo..hi of op(B) and C */
                blas_sgemm_one(ta, tb, M, hi - lo, K, alpha, A, lda,
                               tb ? B + (size_t)lo * ldb : B + lo, ldb, beta, C + lo, ldc);
        }
    }
}

void blas_sgemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    blas_check_args(ta, tb, M, N, K, lda, ldb, ldc);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int p = 0; p < K; p++) {
                /* op(A)[i][p], op(B)[p][j] */
                double a = ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                double b = tb ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                acc += a * b;
            }
            float *c = C + (size_t)i * ldc + j;
            double prev = beta == 0.0f ? 0.0 : (double)beta * *c;
            *c = (float)((double)alpha * acc + prev);
        }
    }
}

void blas_set_threads(int n) {
    HDLM_ASSERT(n >= 1);
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int blas_get_threads(void) {
    return omp_get_max_threads();
}

const char *blas_info(void) {
    static char buf[512];
    int par = openblas_get_parallel();
    const char *pname = par == 0 ? "sequential" : par == 1 ? "pthread" : par == 2 ? "openmp" : "?";
    snprintf(buf, sizeof buf, "%s; core %s; %s", openblas_get_config(), openblas_get_corename(),
             pname);
    return buf;
}
