/* bfloat16 arithmetic for the matrix products (precision = "bf16", docs/performance notes in
 * README): float32 -> bf16 conversion with round-to-nearest-even, a bf16 x bf16 -> float32 GEMM
 * through oneDNN's matmul (optional build dependency; the only include of <dnnl.h> in the
 * project), and a few-row GEMV that reads bf16 weights with AVX512_BF16 dot products (chosen at
 * run time, compiled with a target attribute). Accumulation and outputs are float32 throughout.
 *
 * bf16 values are stored as uint16_t: the high 16 bits of the float32 with the same value. */
#ifndef HDLM_BF16_H
#define HDLM_BF16_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

/* HDLM_OK when bf16 products can run here: hdlm was built with oneDNN and the CPU has
 * AVX512_BF16 (AMX-BF16 CPUs have it too). Otherwise HDLM_EINVAL with a message naming the
 * missing piece, prefixed by `what` (e.g. "db:train: precision \"bf16\""). The environment
 * variable HDLM_NO_BF16=1 makes the CPU count as lacking AVX512_BF16 (to test the refusal). */
int bf16_check(const char *what, error *e);
/* 1 when this hdlm was built with oneDNN (whatever the CPU). */
int bf16_built(void);

/* Round-to-nearest-even of one float (NaN stays a quiet NaN; overflow rounds to infinity). */
static inline uint16_t bf16_from_f32(float x) {
    union {
        float f;
        uint32_t u;
    } v = {x};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u); /* NaN */
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}
static inline float bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)h << 16};
    return v.f;
}

/* dst(n) = bf16(src(n)), rounded to nearest even; parallel over the OpenMP threads when large. */
void bf16_convert(uint16_t *dst, const float *src, size_t n);
/* The same for a (rows, cols) block of row stride ld, written transposed: dst(cols, rows). */
void bf16_convert_transposed(uint16_t *dst, const float *src, int rows, int cols, int ld);

/* C(M,N) = op(A)·op(B) + beta·C with A, B in bf16 and C, the accumulation, in float32
 * (beta 0 or 1; 0 does not read C). Row-major with row strides lda/ldb/ldc as blas_sgemm.
 * Needs bf16_check() == HDLM_OK (asserted). oneDNN primitives are cached per shape, strides and
 * beta. Call from outside parallel regions (oneDNN runs on the OpenMP threads itself).
 * Deterministic for a given shape and thread count. */
void bf16_gemm(int ta, int tb, int M, int N, int K, const uint16_t *A, int lda, const uint16_t *B,
               int ldb, float beta, float *C, int ldc);
/* The same product in plain loops (double accumulation of the bf16 values): the tests' reference.
 * Works without oneDNN. */
void bf16_gemm_naive(int ta, int tb, int M, int N, int K, const uint16_t *A, int lda,
                     const uint16_t *B, int ldb, float beta, float *C, int ldc);
/* Frees the cached primitives (tests; at exit the OS does it). */
void bf16_release(void);

/* Few-row products against bf16 weights, rows [lo, hi) of the output only:
 * out(n, o) = Σ_c x(n, c)·w(o, c) + bias(o) for n < N, o in [lo, hi); x (N, C) and w (OC, C) in
 * bf16 with C even, bias float32 or NULL, out (N, OC). bf16_gemv_rows uses AVX512_BF16 when the
 * CPU has it and the scalar loop otherwise; bf16_gemv_rows_scalar is that loop (the reference:
 * float32 products, summed in double). */
void bf16_gemv_rows(float *out, const uint16_t *x, const uint16_t *w, const float *bias, int N,
                    int C, int OC, int lo, int hi);
void bf16_gemv_rows_scalar(float *out, const uint16_t *x, const uint16_t *w, const float *bias,
                           int N, int C, int OC, int lo, int hi);
/* 1 when bf16_gemv_rows runs the AVX512_BF16 kernel on this CPU. */
int bf16_gemv_native(void);

#endif
