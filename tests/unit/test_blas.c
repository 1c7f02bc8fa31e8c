/* blas_sgemm against the naive double-accumulation reference: all four transpose combinations,
 * non-square shapes, padded row strides (ld > columns), alpha and beta != 0, beta == 0 ignoring
 * garbage in C, K == 0, and sgemm called from inside a parallel region. Prints blas_info(). */
#include "base/rng.h"
#include "check.h"
#include "tensor/blas.h"

#include <stdlib.h>
#include <string.h>

static float *rand_buf(rng *r, size_t n) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0f * rng_uniform_f32(r) - 1.0f;
    return p;
}

/* max |a-b| over the M×N block of two (M, ldc) matrices, and whether padding columns kept their
 * sentinel value */
static double max_diff(const float *a, const float *b, int M, int N, int ldc, int *pad_ok) {
    double m = 0.0;
    *pad_ok = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < ldc; j++) {
            size_t k = (size_t)i * ldc + j;
            if (j < N) {
                double d = fabs((double)a[k] - b[k]);
                m = d > m ? d : m;
            } else if (a[k] != 777.0f || b[k] != 777.0f) {
                *pad_ok = 0;
            }
        }
    }
    return m;
}

/* One comparison; pad > 0 makes every leading dimension larger than its row length. */
static void check_case(rng *r, int ta, int tb, int M, int N, int K, float alpha, float beta,
                       int pad) {
    int arows = ta ? K : M, acols = ta ? M : K;
    int brows = tb ? N : K, bcols = tb ? K : N;
    int lda = acols + pad, ldb = bcols + pad, ldc = N + pad;
    float *A = rand_buf(r, (size_t)arows * lda);
    float *B = rand_buf(r, (size_t)brows * ldb);
    float *C1 = rand_buf(r, (size_t)M * ldc);
    float *C2 = malloc((size_t)M * ldc * sizeof(float));
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++)
            C1[(size_t)i * ldc + j] = 777.0f; /* must stay untouched */
    if (beta == 0.0f) /* beta 0 must not read C: NaN garbage must not leak */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C1[(size_t)i * ldc + j] = NAN;
    memcpy(C2, C1, (size_t)M * ldc * sizeof(float));
    blas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    blas_sgemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
    int pad_ok;
    double d = max_diff(C1, C2, M, N, ldc, &pad_ok);
    double tol = 1e-5 * (K + 1) * (fabs(alpha) + 1.0);
    if (!(d <= tol))
        fprintf(stderr, "sgemm ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d: diff %g\n", ta,
                tb, M, N, K, alpha, beta, pad, d);
    CHECK(d <= tol);
    CHECK(pad_ok);
    free(A), free(B), free(C1), free(C2);
}

/* The naive reference itself against hand-computed values: A(2,3)·B(3,2). */
static void test_naive_known(void) {
    float A[6] = {1, 2, 3, 4, 5, 6};    /* (2,3) */
    float B[6] = {7, 8, 9, 10, 11, 12}; /* (3,2) */
    float C[4] = {1, 1, 1, 1};          /* (2,2) */
    blas_sgemm_naive(0, 0, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
    CHECK_NEAR(C[0], 58, 0);
    CHECK_NEAR(C[1], 64, 0);
    CHECK_NEAR(C[2], 139, 0);
    CHECK_NEAR(C[3], 154, 0);
    /* A^T stored as (3,2): At = [[1,4],[2,5],[3,6]]; alpha 2, beta 0.5 with C = previous */
    float At[6] = {1, 4, 2, 5, 3, 6};
    blas_sgemm(1, 0, 2, 2, 3, 2.0f, At, 2, B, 2, 0.5f, C, 2);
    CHECK_NEAR(C[0], 2 * 58 + 29, 1e-4);
    CHECK_NEAR(C[3], 2 * 154 + 77, 1e-4);
}

int main(void) {
    printf("blas: %s (threads %d)\n", blas_info(), blas_get_threads());
    CHECK_CONTAINS(blas_info(), "OpenBLAS");
    test_naive_known();

    rng r;
    rng_init(&r, 1234);
    const int shapes[][3] = {{1, 1, 1},   {7, 5, 3},  {13, 17, 29},  {64, 96, 80},
                             {33, 1, 40}, {1, 50, 9}, {130, 70, 257}};
    const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}, {1.0f, 1.0f}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t a = 0; a < sizeof ab / sizeof ab[0]; a++)
                    for (int pad = 0; pad <= 3; pad += 3)
                        check_case(&r, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], ab[a][0],
                                   ab[a][1], pad);

    /* K == 0: C = beta*C */
    float c0[4] = {1, 2, 3, 4}, dummy = 0.0f;
    blas_sgemm(0, 0, 2, 2, 0, 1.0f, &dummy, 1, &dummy, 2, 0.5f, c0, 2);
    CHECK_NEAR(c0[0], 0.5, 0);
    CHECK_NEAR(c0[3], 2.0, 0);

    /* inside a parallel region (how attention calls it): each thread its own product */
    int fails = 0;
#pragma omp parallel for reduction(+ : fails)
    for (int i = 0; i < 8; i++) {
        float A[12 * 9], B[9 * 11], C1[12 * 11], C2[12 * 11];
        for (int j = 0; j < 12 * 9; j++)
            A[j] = (float)((j * 7 + i) % 13) - 6.0f;
        for (int j = 0; j < 9 * 11; j++)
            B[j] = (float)((j * 5 + i) % 11) - 5.0f;
        blas_sgemm(0, 0, 12, 11, 9, 1.0f, A, 9, B, 11, 0.0f, C1, 11);
        blas_sgemm_naive(0, 0, 12, 11, 9, 1.0f, A, 9, B, 11, 0.0f, C2, 11);
        for (int j = 0; j < 12 * 11; j++)
            fails += C1[j] != C2[j]; /* small integers: exact */
    }
    CHECK_EQ(fails, 0);

    /* the split path: products above the threshold are cut into row slabs (or column slabs
     * when C is wide and short) over 2 and 3 threads (ctest runs with OMP_NUM_THREADS=1) */
    int nt = blas_get_threads();
    const int big[][3] = {
        {300, 70, 40}, {20, 700, 40}, {100, 100, 64}, {40, 30, 400}, {257, 33, 65}};
    for (int threads = 2; threads <= 3; threads++) {
        blas_set_threads(threads);
        for (size_t s = 0; s < sizeof big / sizeof big[0]; s++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    check_case(&r, ta, tb, big[s][0], big[s][1], big[s][2], 1.0f, 0.0f, 3);
                    check_case(&r, ta, tb, big[s][0], big[s][1], big[s][2], -0.5f, 1.0f, 0);
                }
    }
    blas_set_threads(1);
    CHECK_EQ(blas_get_threads(), 1);
    check_case(&r, 0, 1, 100, 90, 80, 1.0f, 0.0f, 1);
    blas_set_threads(nt);
    CHECK_EQ(blas_get_threads(), nt);
    return check_report("test_blas");
}
