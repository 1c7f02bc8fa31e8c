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

void blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    blas_check_args(ta, tb, M, N, K, lda, ldb, ldc);
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        blas_scale_c(M, N, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
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
