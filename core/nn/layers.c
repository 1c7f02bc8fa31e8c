/* Forward/backward kernels of the DDiT transformer (docs/method.md "The model"): linear (through
 * blas_sgemm), embeddings, LayerNorm without bias, adaLN modulation, gated residuals, tanh-GELU,
 * SiLU, sinusoidal σ features, NeoX rotary, attention with range masks, cross-entropy. Plain loops
 * written so that gcc -O3 vectorises them (our own expf, no libm calls in hot loops), rows/heads in
 * parallel with OpenMP. The loops that dominate a step when they are not vectorised for the CPU
 * (GELU, SiLU, softmax rows, cross-entropy rows, the GEMV) are CPU_KERNELs: compiled per
 * instruction set and chosen at run time (base/cpu.h); the parallel split stays outside them. No
 * model layout, no allocation visible to callers, no dropout. */
#include "nn/layers.h"

#include "base/cpu.h"
#include "base/error.h"
#include "tensor/bf16.h"
#include "tensor/blas.h"

#include <math.h>
#include <omp.h>
#if HDLM_DISPATCH || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/* Below this many elements a kernel stays on the calling thread: waking the pool costs more. */
#define PAR_MIN 16384

/* ---------------------------------------------------------------------------------------------- */
/* vectorisable exp                                                                               */

static inline CPU_INLINE float f32_from_bits(int32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* exp(x) for x clamped to [-87.3, 88.3] (so 2^n stays a normal float), max rel error 8e-8
 * (measured). x = n·ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2, the FMAs keep n·ln2_hi
 * exact), then a degree-7 Taylor polynomial for e^r (truncation 5e-9 at |r| = 0.347) and 2^n built
 * in the exponent bits. Inline and branch-free so the callers' loops vectorise; libm's expf would
 * not. */
static inline CPU_INLINE float fast_expf(float xin) {
    /* NaN must not reach the float->int conversion below (undefined behaviour): compute on a
     * NaN-free copy and hand NaN back at the end (a select, so the loops still vectorise) */
    float x = xin != xin ? 0.0f : xin;
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    const float shifter = 12582912.0f; /* 1.5·2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = fmaf(n, -0.693145751953125f, x); /* ln2_hi, 16 significant bits */
    r = fmaf(n, -1.42860682030941723e-6f, r);  /* ln2_lo */
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    float y = p * f32_from_bits(((int32_t)n + 127) << 23);
    return xin != xin ? xin : y;
}

static inline CPU_INLINE double f64_from_bits(int64_t b) {
    double f;
    memcpy(&f, &b, sizeof f);
    return f;
}
static inline CPU_INLINE int64_t f64_bits(double f) {
    int64_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* exp(x) in double for x clamped to [-708, 709] (2^n stays a normal double), within a few ulp:
 * x = n·ln2 + r, |r| <= ln2/2, with fdlibm's split of ln2 (ln2_hi has 32 significant bits, so
 * n·ln2_hi is exact), a degree-13 Taylor polynomial for e^r (truncation below 1e-17), 2^n built
 * in the exponent bits with integer adds and shifts only (no double -> int64 conversion, which
 * AVX2 lacks), so loops over it vectorise on every variant. NaN is handed back. */
static inline CPU_INLINE double fast_exp(double xin) {
    double x = xin != xin ? 0.0 : xin;
    x = x < -708.0 ? -708.0 : x;
    x = x > 709.0 ? 709.0 : x;
    const double shifter = 6755399441055744.0; /* 1.5·2^52: adding it rounds to an integer */
    double y = x * 1.4426950408889634 + shifter;
    double n = y - shifter;
    double r = fma(n, -6.93147180369123816490e-01, x); /* ln2_hi */
    r = fma(n, -1.90821492927058770002e-10, r);        /* ln2_lo */
    double p = 1.0 / 6227020800.0;                     /* 1/13! */
    p = fma(p, r, 1.0 / 479001600.0);
    p = fma(p, r, 1.0 / 39916800.0);
    p = fma(p, r, 1.0 / 3628800.0);
    p = fma(p, r, 1.0 / 362880.0);
    p = fma(p, r, 1.0 / 40320.0);
    p = fma(p, r, 1.0 / 5040.0);
    p = fma(p, r, 1.0 / 720.0);
    p = fma(p, r, 1.0 / 120.0);
    p = fma(p, r, 1.0 / 24.0);
    p = fma(p, r, 1.0 / 6.0);
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    /* the low bits of y hold n (plus the shifter's): 2^n = bits (n + 1023) << 52 */
    int64_t e = f64_bits(y) - f64_bits(shifter) + 1023;
    double res = p * f64_from_bits(e << 52);
    return xin != xin ? xin : res;
}

/* sigmoid(a) = 1/(1+z), z = exp(-a), for a clamped to [-40, 40]; also returns z for derivatives.
 * The clamp keeps (1+z)^2 finite and results away from denormals (slow on some cores); below -40
 * the sigmoid is flushed to 0 (true value < 5e-18) so x·sigmoid stays 0 for huge negative x. */
static inline CPU_INLINE float fast_sigmoid(float a, float *z_out) {
    float ac = a < -40.0f ? -40.0f : a;
    ac = ac > 40.0f ? 40.0f : ac;
    float z = fast_expf(-ac);
    float s = 1.0f / (1.0f + z);
    *z_out = z;
    return a < -40.0f ? 0.0f : s;
}

/* ---------------------------------------------------------------------------------------------- */
/* linear                                                                                         */

/* Few rows (incremental decoding: one token per sequence): a matrix-vector product is bound by
 * streaming the weights, and BLAS runs its small-matrix kernel on one thread. Split the output
 * rows over the threads instead so every core streams its share of W. Each output is one dot
 * product summed in a fixed order, so results do not depend on the thread count.
 * W is read strictly in address order, one row at a time (all N inputs against a row while it is
 * in L1). Measured on this machine (768 x 256 matrices, 2 threads): a plain row sweep streams W
 * at 45 GB/s from memory and ~105 GB/s from L3, the AVX-512 form below (two accumulators on
 * alternate 16-float chunks, so two FMA chains are in flight) ~150 GB/s from L3; walking four
 * rows side by side, or a row's two halves, makes several streams inside one page and got 16-20
 * GB/s from memory. */
#define LINEAR_GEMV_MAX_N 8
#if HDLM_DISPATCH || defined(__AVX512F__)
/* The AVX-512 dot product measured above: the kernel of the AVX-512 variant, and of gemv_dot in
 * a native build with AVX-512 (which needs no target attribute, and must not have one: it would
 * not inline into the native build's code) */
#if defined(__AVX512F__)
#define GEMV_AVX512_TARGET
#else
#define GEMV_AVX512_TARGET __attribute__((target("arch=x86-64-v4")))
#endif
GEMV_AVX512_TARGET static inline CPU_INLINE float gemv_dot_avx512(const float *x, const float *w,
                                                                  int C) {
    int c = 0;
    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
    for (; c + 32 <= C; c += 32) {
        a = _mm512_fmadd_ps(_mm512_loadu_ps(w + c), _mm512_loadu_ps(x + c), a);
        b = _mm512_fmadd_ps(_mm512_loadu_ps(w + c + 16), _mm512_loadu_ps(x + c + 16), b);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    for (; c < C; c++) /* the tail: none when C is a multiple of 32 */
        s += x[c] * w[c];
    return s;
}
#endif

static inline CPU_INLINE float gemv_dot(const float *x, const float *w, int C) {
#if defined(__AVX512F__)
    return gemv_dot_avx512(x, w, C);
#else
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < C; k++)
        s += x[k] * w[k];
    return s;
#endif
}

/* out rows lo..hi of the GEMV (one thread's share) */
static inline CPU_INLINE void gemv_rows_body(float *out, const float *inp, const float *w,
                                             const float *bias, int N, int C, int OC, int lo,
                                             int hi) {
    for (int o = lo; o < hi; o++) {
        const float *wo = w + (size_t)o * C;
        for (int n = 0; n < N; n++)
            out[(size_t)n * OC + o] =
                gemv_dot(inp + (size_t)n * C, wo, C) + (bias ? bias[o] : 0.0f);
    }
}

#if HDLM_DISPATCH
/* The AVX-512 variant uses the intrinsic dot product measured above; the others are
 * gemv_rows_body compiled for their instruction set (CPU_KERNEL spelled out, to swap in this
 * one). */
__attribute__((target("arch=x86-64-v4"))) static void
gemv_rows_avx512(float *out, const float *inp, const float *w, const float *bias, int N, int C,
                 int OC, int lo, int hi) {
    for (int o = lo; o < hi; o++) {
        const float *wo = w + (size_t)o * C;
        for (int n = 0; n < N; n++)
            out[(size_t)n * OC + o] =
                gemv_dot_avx512(inp + (size_t)n * C, wo, C) + (bias ? bias[o] : 0.0f);
    }
}
__attribute__((target("arch=x86-64-v3"))) static void
gemv_rows_avx2(float *out, const float *inp, const float *w, const float *bias, int N, int C,
               int OC, int lo, int hi) {
    gemv_rows_body(out, inp, w, bias, N, C, OC, lo, hi);
}
static void gemv_rows_generic(float *out, const float *inp, const float *w, const float *bias,
                              int N, int C, int OC, int lo, int hi) {
    gemv_rows_body(out, inp, w, bias, N, C, OC, lo, hi);
}
static void (*const gemv_rows_variants[CPU_N_VARIANTS])(float *, const float *, const float *,
                                                        const float *, int, int, int, int,
                                                        int) = {[CPU_GENERIC] = gemv_rows_generic,
                                                                [CPU_AVX2] = gemv_rows_avx2,
                                                                [CPU_AVX512] = gemv_rows_avx512};
static void gemv_rows_f32(float *out, const float *inp, const float *w, const float *bias, int N,
                          int C, int OC, int lo, int hi) {
    gemv_rows_variants[cpu_variant_active()](out, inp, w, bias, N, C, OC, lo, hi);
}
#else
CPU_KERNEL(gemv_rows_f32, gemv_rows_body,
           (float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC,
            int lo, int hi),
           (out, inp, w, bias, N, C, OC, lo, hi))
#endif

/* The two vCPUs of this VM do not stream memory equally fast: timed inside a 2-thread GEMV over
 * 128 MB of weights, the second thread took 3.5 ms for its half where the first took 2.8 ms, so a
 * fixed half each left the first waiting ~20% of the time. Each thread's rows therefore follow its
 * measured rate (an exponential average over calls, in weights per second). Which thread computes
 * a row does not change its value, so results stay independent of the split. State is touched only
 * by the serial caller (GEMVs inside a parallel region run on the calling thread). */
#define GEMV_MAX_THREADS 64
static double gemv_rate[GEMV_MAX_THREADS];
static int gemv_threads_cap; /* linear_set_gemv_threads; 0 = no cap */

void linear_set_gemv_threads(int n) {
    HDLM_ASSERT(n >= 0);
    gemv_threads_cap = n;
}

/* x16/w16 non-NULL: the bf16 forms of inp/w (precision "bf16"), read instead of inp/w. */
static void gemv_rows(float *out, const float *inp, const float *w, const uint16_t *x16,
                      const uint16_t *w16, const float *bias, int N, int C, int OC, int lo,
                      int hi) {
    if (w16) {
        bf16_gemv_rows(out, x16, w16, bias, N, C, OC, lo, hi);
        return;
    }
    gemv_rows_f32(out, inp, w, bias, N, C, OC, lo, hi);
}

static void linear_forward_gemv(float *out, const float *inp, const float *w, const uint16_t *x16,
                                const uint16_t *w16, const float *bias, int N, int C, int OC) {
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    nt = nt < GEMV_MAX_THREADS ? nt : GEMV_MAX_THREADS;
    if (gemv_threads_cap > 0 && nt > gemv_threads_cap) nt = gemv_threads_cap;
    if (w16) (void)bf16_gemv_native(); /* its one-time CPU query before any parallel region */
    if (nt < 2 || (int64_t)OC * C < 65536) {
        gemv_rows(out, inp, w, x16, w16, bias, N, C, OC, 0, OC);
        return;
    }
    double dt[GEMV_MAX_THREADS] = {0};
    int rows[GEMV_MAX_THREADS] = {0};
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        /* unknown rates count as equal; no thread drops below a quarter of the fastest, so a
         * thread slowed once (preempted) keeps enough rows to be timed again and recover */
        double top = 0.0, tot = 0.0, before = 0.0, mine = 1.0;
        for (int k = 0; k < n; k++)
            top = gemv_rate[k] > top ? gemv_rate[k] : top;
        for (int k = 0; k < n; k++) {
            double r = top > 0.0 ? (gemv_rate[k] > 0.25 * top ? gemv_rate[k] : 0.25 * top) : 1.0;
            tot += r;
            if (k < t) before += r;
            if (k == t) mine = r;
        }
        int lo = (int)((double)OC * before / tot), hi = (int)((double)OC * (before + mine) / tot);
        if (t == n - 1) hi = OC;
        double t0 = omp_get_wtime();
        gemv_rows(out, inp, w, x16, w16, bias, N, C, OC, lo, hi);
        dt[t] = omp_get_wtime() - t0;
        rows[t] = hi - lo;
    }
    for (int t = 0; t < nt; t++) {
        if (rows[t] < 1 || dt[t] <= 0.0) continue;
        double r = (double)rows[t] * C / dt[t];
        gemv_rate[t] = gemv_rate[t] > 0.0 ? 0.9 * gemv_rate[t] + 0.1 * r : r;
    }
}

void linear_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C,
                    int OC) {
    if (N <= LINEAR_GEMV_MAX_N) {
        linear_forward_gemv(out, inp, w, NULL, NULL, bias, N, C, OC);
        return;
    }
    if (bias) {
        /* rows start as the bias and sgemm adds with beta 1: this replaces the pass in which
         * OpenBLAS zeroes C for beta 0, instead of adding a pass after the product */
#pragma omp parallel for schedule(static) if ((int64_t)N * OC >= PAR_MIN)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
    }
    /* out(N,OC) (+)= inp(N,C) · w(OC,C)^T */
    blas_sgemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, bias ? 1.0f : 0.0f, out, OC);
}

/* Column sums of a (N, C) matrix added into acc (C): each thread owns a slice of columns so the
 * result is race-free and does not depend on the thread count. */
static inline CPU_INLINE void colsum_body(float *acc, const float *x, int N, int C, int c0,
                                          int c1) {
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
#pragma omp simd
        for (int c = c0; c < c1; c++)
            acc[c] += xn[c];
    }
}
CPU_KERNEL(colsum_k, colsum_body, (float *acc, const float *x, int N, int C, int c0, int c1),
           (acc, x, N, C, c0, c1))

static void colsum_accumulate(float *acc, const float *x, int N, int C) {
#pragma omp parallel if ((int64_t)N * C >= PAR_MIN)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        int c0 = (int)((int64_t)C * tid / nt), c1 = (int)((int64_t)C * (tid + 1) / nt);
        colsum_k(acc, x, N, C, c0, c1);
    }
}

void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    /* dinp(N,C) += dout(N,OC) · w(OC,C) */
    if (dinp) blas_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    /* dw(OC,C) += dout(N,OC)^T · inp(N,C) */
    if (dw) blas_sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (dbias) colsum_accumulate(dbias, dout, N, OC);
}

void linear_backward_into(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                          const float *w, int N, int C, int OC) {
    /* dinp(N,C) = dout(N,OC) · w(OC,C) */
    if (dinp) blas_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
    linear_backward(NULL, dw, dbias, dout, inp, w, N, C, OC);
}

/* bf16 forms: the float32 operands are rounded to bf16 into scratch (whose sizes the header
 * gives), products run in bf16 with float32 accumulation into float32 outputs; biases and their
 * gradients stay float32. */
void linear_forward_bf16(float *out, const float *inp, const uint16_t *w16, const float *bias,
                         int N, int C, int OC, uint16_t *scr) {
    bf16_convert(scr, inp, (size_t)N * C); /* (N,C) */
    if (N <= LINEAR_GEMV_MAX_N) {
        linear_forward_gemv(out, NULL, NULL, scr, w16, bias, N, C, OC);
        return;
    }
    if (bias) {
#pragma omp parallel for schedule(static) if ((int64_t)N * OC >= PAR_MIN)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
    }
    /* out(N,OC) (+)= inp16(N,C) · w16(OC,C)^T */
    bf16_gemm(0, 1, N, OC, C, scr, C, w16, C, bias ? 1.0f : 0.0f, out, OC);
}

void linear_backward_bf16(float *dinp, int dinp_into, float *dw, float *dbias, const float *dout,
                          const float *inp, const uint16_t *w16, int N, int C, int OC,
                          uint16_t *scr_a, uint16_t *scr_b) {
    if (dinp) {
        bf16_convert(scr_a, dout, (size_t)N * OC); /* dout16 (N,OC) */
        /* dinp(N,C) (+)= dout16(N,OC) · w16(OC,C) */
        bf16_gemm(0, 0, N, C, OC, scr_a, OC, w16, C, dinp_into ? 0.0f : 1.0f, dinp, C);
    }
    if (dw) {
        /* dw(OC,C) += dout16^T(OC,N) · inp16(N,C); dout^T is written out by the conversion (a
         * transposed-A operand sent oneDNN's brgemm matmul to a slower kernel) */
        bf16_convert_transposed(scr_a, dout, N, OC, OC); /* (OC,N) */
        bf16_convert(scr_b, inp, (size_t)N * C);         /* (N,C) */
        bf16_gemm(0, 0, OC, C, N, scr_a, N, scr_b, C, 1.0f, dw, C);
    }
    if (dbias) colsum_accumulate(dbias, dout, N, OC);
}

void linear_forward_naive(float *out, const float *inp, const float *w, const float *bias, int N,
                          int C, int OC) {
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++)
                acc += (double)inp[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = (float)acc;
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* embeddings                                                                                     */

void embedding_forward(float *out, const int32_t *tok, const float *wte, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        HDLM_ASSERT(tok[n] >= 0);
        memcpy(out + (size_t)n * C, wte + (size_t)tok[n] * C, (size_t)C * sizeof(float));
    }
}

/* Rows of dwte repeat when tokens repeat, so threads split the columns instead of the rows. */
void embedding_backward(float *dwte, const float *dout, const int32_t *tok, int N, int C) {
#pragma omp parallel if ((int64_t)N * C >= PAR_MIN)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        int c0 = (int)((int64_t)C * tid / nt), c1 = (int)((int64_t)C * (tid + 1) / nt);
        for (int n = 0; n < N; n++) {
            float *d = dwte + (size_t)tok[n] * C;
            const float *g = dout + (size_t)n * C;
#pragma omp simd
            for (int c = c0; c < c1; c++)
                d[c] += g[c];
        }
    }
}

void embedding_mix_forward(float *out, const int32_t *tok, const float *w, const float *wte,
                           int mask_id, int N, int C) {
    const float *em = wte + (size_t)mask_id * C; /* (C) the mask token's row */
#pragma omp parallel for schedule(static) if ((int64_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        HDLM_ASSERT(tok[n] >= 0);
        const float *et = wte + (size_t)tok[n] * C;
        float *o = out + (size_t)n * C;
        float a = w[n], b = 1.0f - w[n];
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = a * et[c] + b * em[c];
    }
}

void embedding_mix_backward(float *dwte, const float *dout, const int32_t *tok, const float *w,
                            int mask_id, int N, int C) {
#pragma omp parallel if ((int64_t)N * C >= PAR_MIN)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        int c0 = (int)((int64_t)C * tid / nt), c1 = (int)((int64_t)C * (tid + 1) / nt);
        float *dm = dwte + (size_t)mask_id * C;
        for (int n = 0; n < N; n++) {
            float *dt = dwte + (size_t)tok[n] * C;
            const float *g = dout + (size_t)n * C;
            float a = w[n], b = 1.0f - w[n];
            /* two statements, not one loop body: dt and dm are the same row when tok == mask_id */
#pragma omp simd
            for (int c = c0; c < c1; c++)
                dt[c] += a * g[c];
#pragma omp simd
            for (int c = c0; c < c1; c++)
                dm[c] += b * g[c];
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* LayerNorm (weight, no bias), adaLN modulation, gated residual                                  */

#define LN_EPS 1e-5f

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        /* two passes over a row that sits in L1: exact-enough variance without Welford */
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++)
            s += x[c];
        float m = s / (float)C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        float rs = 1.0f / sqrtf(v / (float)C + LN_EPS);
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = (x[c] - m) * rs * weight[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = rs;
    }
}

void layernorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C) {
    int nt = (int64_t)N * C >= PAR_MIN ? omp_get_max_threads() : 1;
    /* dweight sums over rows: one partial (C) per thread, added in thread order afterwards */
    float *part = NULL;
    if (dweight) {
        part = calloc((size_t)nt * C, sizeof(float));
        HDLM_ASSERT(part);
    }
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *dw = part ? part + (size_t)omp_get_thread_num() * C : NULL;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
            float m = mean[n], rs = rstd[n];
            /* dnorm = g*weight; dx = rs*(dnorm - mean(dnorm) - norm*mean(dnorm*norm)) */
            float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
            for (int c = 0; c < C; c++) {
                float norm = (x[c] - m) * rs, dnorm = g[c] * weight[c];
                a += dnorm;
                b += dnorm * norm;
            }
            a /= (float)C;
            b /= (float)C;
            if (dinp) {
                float *d = dinp + (size_t)n * C;
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    float norm = (x[c] - m) * rs;
                    d[c] += (g[c] * weight[c] - a - norm * b) * rs;
                }
            }
            if (dw) {
#pragma omp simd
                for (int c = 0; c < C; c++)
                    dw[c] += g[c] * (x[c] - m) * rs;
            }
        }
    }
    if (dweight) {
        for (int t = 0; t < nt; t++) {
            const float *p = part + (size_t)t * C;
            for (int c = 0; c < C; c++)
                dweight[c] += p[c];
        }
        free(part);
    }
}

/* Columns [*c0, c1) of C for the calling thread of a parallel region, on 16-float (cache line)
 * boundaries so that threads never write the same line. */
static int col_slice(int C, int *c0) {
    int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    int per = ((C + nt - 1) / nt + 15) & ~15;
    int lo = tid * per < C ? tid * per : C, hi = lo + per < C ? lo + per : C;
    *c0 = lo;
    return hi;
}

void modulate_forward(float *out, const float *inp, const float *shift, const float *scale, int ld,
                      const int32_t *row, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        size_t r = (size_t)(row ? row[n] : n);
        const float *x = inp + (size_t)n * C, *sh = shift + r * ld, *sc = scale + r * ld;
        float *o = out + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = x[c] * (1.0f + sc[c]) + sh[c];
    }
}

/* Several tokens may share a shift/scale row, so threads split the columns, not the tokens: no
 * races, and every sum runs in token order whatever the thread count. */
static inline CPU_INLINE void modulate_backward_body(float *dinp, float *dshift, float *dscale,
                                                     const float *dout, const float *inp,
                                                     const float *scale, int ld, const int32_t *row,
                                                     int N, int C, int c0, int c1) {
    {
        for (int n = 0; n < N; n++) {
            size_t r = (size_t)(row ? row[n] : n);
            const float *g = dout + (size_t)n * C, *x = inp + (size_t)n * C;
            const float *sc = scale + r * ld;
            if (dinp) {
                float *d = dinp + (size_t)n * C;
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    d[c] += g[c] * (1.0f + sc[c]);
            }
            if (dshift) {
                float *d = dshift + r * ld;
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    d[c] += g[c];
            }
            if (dscale) {
                float *d = dscale + r * ld;
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    d[c] += g[c] * x[c];
            }
        }
    }
}
CPU_KERNEL(modulate_backward_k, modulate_backward_body,
           (float *dinp, float *dshift, float *dscale, const float *dout, const float *inp,
            const float *scale, int ld, const int32_t *row, int N, int C, int c0, int c1),
           (dinp, dshift, dscale, dout, inp, scale, ld, row, N, C, c0, c1))

void modulate_backward(float *dinp, float *dshift, float *dscale, const float *dout,
                       const float *inp, const float *scale, int ld, const int32_t *row, int N,
                       int C) {
#pragma omp parallel if ((int64_t)N * C >= PAR_MIN)
    {
        int c0, c1 = col_slice(C, &c0);
        modulate_backward_k(dinp, dshift, dscale, dout, inp, scale, ld, row, N, C, c0, c1);
    }
}

void residual_forward(float *out, const float *res, const float *x, const float *gate, int ld,
                      const int32_t *row, int N, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *r = res + (size_t)n * C, *xn = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
        if (gate) {
            const float *gt = gate + (size_t)(row ? row[n] : n) * ld;
#pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] = r[c] + gt[c] * xn[c];
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] = r[c] + xn[c];
        }
    }
}

/* Column slices per thread, as in modulate_backward (gate rows may be shared). */
static inline CPU_INLINE void residual_backward_body(float *dres, float *dx, float *dgate,
                                                     const float *dout, const float *x,
                                                     const float *gate, int ld, const int32_t *row,
                                                     int N, int C, int c0, int c1) {
    {
        for (int n = 0; n < N; n++) {
            size_t r = (size_t)(row ? row[n] : n);
            const float *g = dout + (size_t)n * C, *xn = x + (size_t)n * C;
            const float *gt = gate ? gate + r * ld : NULL;
            if (dres) {
                float *d = dres + (size_t)n * C;
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    d[c] += g[c];
            }
            if (dx) {
                float *d = dx + (size_t)n * C;
                if (gt) {
#pragma omp simd
                    for (int c = c0; c < c1; c++)
                        d[c] += gt[c] * g[c];
                } else {
#pragma omp simd
                    for (int c = c0; c < c1; c++)
                        d[c] += g[c];
                }
            }
            if (dgate && gt) {
                float *d = dgate + r * ld;
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    d[c] += g[c] * xn[c];
            }
        }
    }
}
CPU_KERNEL(residual_backward_k, residual_backward_body,
           (float *dres, float *dx, float *dgate, const float *dout, const float *x,
            const float *gate, int ld, const int32_t *row, int N, int C, int c0, int c1),
           (dres, dx, dgate, dout, x, gate, ld, row, N, C, c0, c1))

void residual_backward(float *dres, float *dx, float *dgate, const float *dout, const float *x,
                       const float *gate, int ld, const int32_t *row, int N, int C) {
#pragma omp parallel if ((int64_t)N * C >= PAR_MIN)
    {
        int c0, c1 = col_slice(C, &c0);
        residual_backward_k(dres, dx, dgate, dout, x, gate, ld, row, N, C, c0, c1);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* activations                                                                                    */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* 0.5x(1 + tanh(u)) == x·sigmoid(2u), u = K(x + A x^3). The sigmoid form is the same function
 * without the cancellation in 1 + tanh(u) for negative x or 1 - tanh^2 in the derivative, so the
 * fast exp alone sets the error (< 1e-6 absolute against libm tanh over [-10, 10]). */
static inline CPU_INLINE void gelu_forward_body(float *out, const float *inp, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        float u = GELU_K * (x + GELU_A * x * x * x), z;
        out[i] = x * fast_sigmoid(2.0f * u, &z);
    }
}
CPU_KERNEL(gelu_forward_k, gelu_forward_body, (float *out, const float *inp, int64_t n),
           (out, inp, n))

/* GELU'(x) in the sigmoid form: s + x·sigmoid'(2u)·2u' with sigmoid' = s(1-s) = z·s² (no 1-s
 * cancellation); the second term is dropped once |2u| > 40, where it is < 1e-15 but x·u' may
 * overflow. */
static inline CPU_INLINE float gelu_grad(float x) {
    float u = GELU_K * (x + GELU_A * x * x * x);
    float z, s = fast_sigmoid(2.0f * u, &z); /* sigmoid(2u) */
    float du = GELU_K * (1.0f + 3.0f * GELU_A * x * x);
    float slope = 2.0f * x * du * z * s * s;
    return s + (fabsf(2.0f * u) > 40.0f ? 0.0f : slope);
}

static inline CPU_INLINE void gelu_backward_body(float *dinp, const float *inp, const float *dout,
                                                 int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        dinp[i] += gelu_grad(inp[i]) * dout[i];
}
CPU_KERNEL(gelu_backward_k, gelu_backward_body,
           (float *dinp, const float *inp, const float *dout, int64_t n), (dinp, inp, dout, n))

static inline CPU_INLINE void gelu_backward_inplace_body(float *d, const float *inp, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        d[i] *= gelu_grad(inp[i]);
}
CPU_KERNEL(gelu_backward_inplace_k, gelu_backward_inplace_body,
           (float *d, const float *inp, int64_t n), (d, inp, n))

static inline CPU_INLINE void silu_forward_body(float *out, const float *inp, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i], z;
        out[i] = x * fast_sigmoid(x, &z);
    }
}
CPU_KERNEL(silu_forward_k, silu_forward_body, (float *out, const float *inp, int64_t n),
           (out, inp, n))

static inline CPU_INLINE void silu_backward_body(float *dinp, const float *inp, const float *dout,
                                                 int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        float z, s = fast_sigmoid(x, &z);
        /* d/dx x·s(x) = s + x·s(1-s) = s + x·z·s², the second term dropped where |x| > 40 */
        float slope = x * z * s * s;
        dinp[i] += (s + (fabsf(x) > 40.0f ? 0.0f : slope)) * dout[i];
    }
}
CPU_KERNEL(silu_backward_k, silu_backward_body,
           (float *dinp, const float *inp, const float *dout, int64_t n), (dinp, inp, dout, n))

/* Element-wise kernels over n values: each thread takes one contiguous share (as a static
 * schedule would), the kernel variant runs on it. */
#define PAR_SHARES(n, CALL)                                                                        \
    do {                                                                                           \
        int64_t n_ = (n);                                                                          \
        _Pragma("omp parallel if (n_ >= PAR_MIN)") {                                               \
            int t_ = omp_get_thread_num(), nt_ = omp_get_num_threads();                            \
            int64_t lo = n_ * t_ / nt_, hi = n_ * (t_ + 1) / nt_;                                  \
            if (hi > lo) CALL;                                                                     \
        }                                                                                          \
    } while (0)

void gelu_forward(float *out, const float *inp, int64_t n) {
    PAR_SHARES(n, gelu_forward_k(out + lo, inp + lo, hi - lo));
}

void gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
    PAR_SHARES(n, gelu_backward_k(dinp + lo, inp + lo, dout + lo, hi - lo));
}

void gelu_backward_inplace(float *d, const float *inp, int64_t n) {
    PAR_SHARES(n, gelu_backward_inplace_k(d + lo, inp + lo, hi - lo));
}

void silu_forward(float *out, const float *inp, int64_t n) {
    PAR_SHARES(n, silu_forward_k(out + lo, inp + lo, hi - lo));
}

void silu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
    PAR_SHARES(n, silu_backward_k(dinp + lo, inp + lo, dout + lo, hi - lo));
}

/* ---------------------------------------------------------------------------------------------- */
/* sinusoidal σ features and rotary positions                                                     */

void timestep_features(float *out, const float *sigma, int N, int dim) {
    int half = dim / 2;
    float *freq = malloc((size_t)(half > 0 ? half : 1) * sizeof(float)); /* (half) */
    HDLM_ASSERT(freq);
    for (int k = 0; k < half; k++)
        freq[k] = (float)exp(-log(10000.0) * (double)k / (double)half);
#pragma omp parallel for schedule(static) if ((int64_t)N * dim >= PAR_MIN / 4)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * dim;
        for (int k = 0; k < half; k++) {
            /* like the reference: frequencies and arguments in float32, cos/sin of that float */
            float arg = sigma[n] * freq[k];
            o[k] = cosf(arg);
            o[half + k] = sinf(arg);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
    free(freq);
}

/* Rotates pairs (x[k], x[k+hd/2]) by theta_{p,k}; sign -1 applies the inverse rotation.
 * cos/sin are tabulated once per call: per distinct position when the positions span at most N
 * values (the usual 0..T-1 repeated over the batch), otherwise per row. */
/* rows lo..hi of x rotated by the cos/sin tables (one thread's share) */
static inline CPU_INLINE void rope_rotate_body(float *x, int ld, const int32_t *pos, int32_t pmin,
                                               int by_pos, const float *ctab, const float *stab,
                                               int H, int hd, int lo, int hi) {
    int half = hd / 2;
    for (int n = lo; n < hi; n++) {
        size_t r = by_pos ? (size_t)(pos[n] - pmin) : (size_t)n;
        const float *cs = ctab + r * half, *sn = stab + r * half;
        for (int h = 0; h < H; h++) {
            float *x1 = x + (size_t)n * ld + (size_t)h * hd, *x2 = x1 + half;
#pragma omp simd
            for (int k = 0; k < half; k++) {
                float a = x1[k], b = x2[k];
                x1[k] = a * cs[k] - b * sn[k];
                x2[k] = b * cs[k] + a * sn[k];
            }
        }
    }
}
CPU_KERNEL(rope_rotate_k, rope_rotate_body,
           (float *x, int ld, const int32_t *pos, int32_t pmin, int by_pos, const float *ctab,
            const float *stab, int H, int hd, int lo, int hi),
           (x, ld, pos, pmin, by_pos, ctab, stab, H, hd, lo, hi))

static void rope_apply(float *x, int ld, const int32_t *pos, int N, int H, int hd, float sign) {
    HDLM_ASSERT(hd % 2 == 0 && hd > 0);
    if (N <= 0) return;
    int half = hd / 2;
    int32_t pmin = pos[0], pmax = pos[0];
    for (int n = 1; n < N; n++) {
        pmin = pos[n] < pmin ? pos[n] : pmin;
        pmax = pos[n] > pmax ? pos[n] : pmax;
    }
    HDLM_ASSERT(pmin >= 0);
    int by_pos = (int64_t)pmax - pmin + 1 <= N;
    int R = by_pos ? pmax - pmin + 1 : N;                         /* table rows */
    float *tab = malloc(((size_t)R * hd + half) * sizeof(float)); /* cos (R,half), sin (R,half) */
    HDLM_ASSERT(tab);
    float *ctab = tab, *stab = tab + (size_t)R * half, *inv = tab + (size_t)R * hd;
    /* inv_freq like the reference: 1 / 10000^(2k/hd) in float32, theta = p * inv_freq in float32 */
    for (int k = 0; k < half; k++)
        inv[k] = 1.0f / powf(10000.0f, (float)(2 * k) / (float)hd);
#pragma omp parallel for schedule(static) if ((int64_t)R * half >= PAR_MIN / 4)
    for (int r = 0; r < R; r++) {
        float p = (float)(by_pos ? pmin + r : pos[r]);
        for (int k = 0; k < half; k++) {
            float th = p * inv[k];
            ctab[(size_t)r * half + k] = cosf(th);
            stab[(size_t)r * half + k] = sign * sinf(th);
        }
    }
#pragma omp parallel if ((int64_t)N * H * hd >= PAR_MIN)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int lo = (int)((int64_t)N * t / nt), hi = (int)((int64_t)N * (t + 1) / nt);
        if (hi > lo) rope_rotate_k(x, ld, pos, pmin, by_pos, ctab, stab, H, hd, lo, hi);
    }
    free(tab);
}

void rope_forward(float *x, int ld, const int32_t *pos, int N, int H, int hd) {
    rope_apply(x, ld, pos, N, H, hd, 1.0f);
}

void rope_backward(float *dx, int ld, const int32_t *pos, int N, int H, int hd) {
    rope_apply(dx, ld, pos, N, H, hd, -1.0f);
}

/* ---------------------------------------------------------------------------------------------- */
/* attention                                                                                      */

/* The allowed keys of a row as 0, 1 or 2 sorted, disjoint segments seg[2i]..seg[2i+1]. */
static int attn_segments(const attn_row *r, int Tk, int seg[4]) {
    int a0 = r->lo1, a1 = r->hi1, b0 = r->lo2, b1 = r->hi2;
    int na = a0 < a1, nb = b0 < b1;
    if (na) HDLM_ASSERT(a0 >= 0 && a1 <= Tk);
    if (nb) HDLM_ASSERT(b0 >= 0 && b1 <= Tk);
    if (!na && !nb) return 0;
    if (!na || !nb) {
        seg[0] = na ? a0 : b0;
        seg[1] = na ? a1 : b1;
        return 1;
    }
    if (b0 < a0) { /* order by start */
        int t0 = a0, t1 = a1;
        a0 = b0, a1 = b1, b0 = t0, b1 = t1;
    }
    seg[0] = a0;
    if (b0 <= a1) { /* overlapping or touching: merge */
        seg[1] = a1 > b1 ? a1 : b1;
        return 1;
    }
    seg[1] = a1, seg[2] = b0, seg[3] = b1;
    return 2;
}

/* Masked softmax in place over one row of scores p (Tk): allowed keys get probabilities, blocked
 * keys 0; a fully blocked row becomes uniform over all Tk keys (docs/method.md "Attention masks").
 */
static inline CPU_INLINE void attn_softmax_row_body(float *p, const attn_row *r, int Tk) {
    int seg[4];
    int ns = attn_segments(r, Tk, seg);
    if (ns == 0) {
        float u = 1.0f / (float)Tk;
        for (int j = 0; j < Tk; j++)
            p[j] = u;
        return;
    }
    float m = -INFINITY;
    for (int s = 0; s < ns; s++) {
#pragma omp simd reduction(max : m)
        for (int j = seg[2 * s]; j < seg[2 * s + 1]; j++)
            m = p[j] > m ? p[j] : m;
    }
    float sum = 0.0f;
    for (int s = 0; s < ns; s++) {
#pragma omp simd reduction(+ : sum)
        for (int j = seg[2 * s]; j < seg[2 * s + 1]; j++) {
            p[j] = fast_expf(p[j] - m);
            sum += p[j];
        }
    }
    float inv = 1.0f / sum;
    int prev = 0; /* end of the previous segment: zero the gap before each segment */
    for (int s = 0; s < ns; s++) {
        for (int j = prev; j < seg[2 * s]; j++)
            p[j] = 0.0f;
#pragma omp simd
        for (int j = seg[2 * s]; j < seg[2 * s + 1]; j++)
            p[j] *= inv;
        prev = seg[2 * s + 1];
    }
    for (int j = prev; j < Tk; j++)
        p[j] = 0.0f;
}
CPU_KERNEL(attn_softmax_row, attn_softmax_row_body, (float *p, const attn_row *r, int Tk),
           (p, r, Tk))

/* Inverted dropout on one (T,Tk) probability block: dst = src * keep / (1 - p). */
static void attn_dropout_block(float *dst, const float *src, const uint8_t *keep, float pdrop,
                               size_t n) {
    float sc = 1.0f / (1.0f - pdrop);
#pragma omp simd
    for (size_t j = 0; j < n; j++)
        dst[j] = keep[j] ? src[j] * sc : 0.0f;
}

void attention_forward_dropout(float *out, float *att, const float *q, int ldq, const float *k,
                               int ldk, const float *v, int ldv, int64_t kv_bstride,
                               const attn_row *rows, int B, int T, int Tk, int C, int H,
                               const uint8_t *keep, float pdrop) {
    HDLM_ASSERT(H > 0 && C % H == 0 && Tk > 0);
    HDLM_ASSERT(!keep || (pdrop > 0.0f && pdrop < 1.0f));
    int hd = C / H;
    float scale = 1.0f / sqrtf((float)hd);
    /* (b,h) pairs in parallel, each with single-threaded sgemm (we are inside a parallel region) */
#pragma omp parallel if (B * H > 1)
    {
        float *pd = NULL; /* (T,Tk) dropped-out probabilities, only with dropout */
        if (keep) {
            pd = malloc((size_t)T * Tk * sizeof(float));
            HDLM_ASSERT(pd);
        }
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            const float *qh = q + (size_t)b * T * ldq + (size_t)h * hd; /* (T,hd) stride ldq */
            const float *kh = k + b * kv_bstride + (size_t)h * hd;      /* (Tk,hd) stride ldk */
            const float *vh = v + b * kv_bstride + (size_t)h * hd;      /* (Tk,hd) stride ldv */
            float *ah = att + (size_t)bh * T * Tk;                      /* (T,Tk) */
            float *oh = out + (size_t)b * T * C + (size_t)h * hd;       /* (T,hd) stride C */
            blas_sgemm(0, 1, T, Tk, hd, scale, qh, ldq, kh, ldk, 0.0f, ah, Tk);
            for (int t = 0; t < T; t++)
                attn_softmax_row(ah + (size_t)t * Tk, &rows[b * T + t], Tk);
            const float *pv = ah;
            if (keep) {
                attn_dropout_block(pd, ah, keep + (size_t)bh * T * Tk, pdrop, (size_t)T * Tk);
                pv = pd;
            }
            blas_sgemm(0, 0, T, hd, Tk, 1.0f, pv, Tk, vh, ldv, 0.0f, oh, C);
        }
        free(pd);
    }
}

void attention_forward(float *out, float *att, const float *q, int ldq, const float *k, int ldk,
                       const float *v, int ldv, int64_t kv_bstride, const attn_row *rows, int B,
                       int T, int Tk, int C, int H) {
    attention_forward_dropout(out, att, q, ldq, k, ldk, v, ldv, kv_bstride, rows, B, T, Tk, C, H,
                              NULL, 0.0f);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                        const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                        int64_t kv_bstride, const attn_row *rows, int B, int T, int Tk, int C,
                        int H) {
    attention_backward_dropout(dq, dk, dv, dout, att, q, ldq, k, ldk, v, ldv, kv_bstride, rows, B,
                               T, Tk, C, H, NULL, 0.0f, 1);
}

void attention_backward_dropout(float *dq, float *dk, float *dv, const float *dout,
                                const float *att, const float *q, int ldq, const float *k, int ldk,
                                const float *v, int ldv, int64_t kv_bstride, const attn_row *rows,
                                int B, int T, int Tk, int C, int H, const uint8_t *keep,
                                float pdrop, int accumulate) {
    HDLM_ASSERT(H > 0 && C % H == 0 && Tk > 0);
    HDLM_ASSERT(!keep || (pdrop > 0.0f && pdrop < 1.0f));
    int hd = C / H;
    float scale = 1.0f / sqrtf((float)hd);
    /* Tasks write disjoint slices: (b,h) owns rows of batch b, columns of head h. With a K/V
     * shared by the whole batch (kv_bstride 0) dk/dv of one head collect from every b, so a task
     * is then a head with all its batch rows. */
    int shared = kv_bstride == 0 && B > 1;
    int ntask = shared ? H : B * H;
#pragma omp parallel if (ntask > 1)
    {
        float *dp = NULL; /* (T,Tk) scratch: dP, then dS in place */
        float *pd = NULL; /* (T,Tk) dropped-out probabilities, only with dropout */
        if (dq || dk) {
            dp = malloc((size_t)T * Tk * sizeof(float));
            HDLM_ASSERT(dp);
        }
        if (keep) {
            pd = malloc((size_t)T * Tk * sizeof(float));
            HDLM_ASSERT(pd);
        }
#pragma omp for schedule(static)
        for (int task = 0; task < ntask; task++) {
            int h = task % H;
            int bstart = shared ? 0 : task / H, bend = shared ? B : task / H + 1;
            for (int b = bstart; b < bend; b++) {
                /* each task writes its dq slice once, and its dk/dv slice once per batch row
                 * it collects: overwrite on the first write unless accumulating */
                float bq = accumulate ? 1.0f : 0.0f, bkv = accumulate || b > bstart ? 1.0f : 0.0f;
                size_t qoff = (size_t)b * T * ldq + (size_t)h * hd;
                size_t koff = (size_t)(b * kv_bstride) + (size_t)h * hd;
                size_t voff = (size_t)(b * kv_bstride) + (size_t)h * hd;
                const float *ah = att + ((size_t)b * H + h) * T * Tk;         /* (T,Tk) */
                const float *doh = dout + (size_t)b * T * C + (size_t)h * hd; /* (T,hd) */
                const uint8_t *kh = keep ? keep + ((size_t)b * H + h) * T * Tk : NULL;
                /* dV(Tk,hd) += Pd^T · dO, Pd = P (or its dropped-out copy) */
                const float *pv = ah;
                if (kh) {
                    attn_dropout_block(pd, ah, kh, pdrop, (size_t)T * Tk);
                    pv = pd;
                }
                if (dv) blas_sgemm(1, 0, Tk, hd, T, 1.0f, pv, Tk, doh, C, bkv, dv + voff, ldv);
                if (!dp) continue;
                /* dP(T,Tk) = dO · V^T (through the dropout mask: dP = dPd * keep / (1-p)) */
                blas_sgemm(0, 1, T, Tk, hd, 1.0f, doh, C, v + voff, ldv, 0.0f, dp, Tk);
                if (kh) attn_dropout_block(dp, dp, kh, pdrop, (size_t)T * Tk);
                /* dS = P ⊙ (dP - rowsum(P ⊙ dP)); zero where P is 0, and on fully blocked rows
                 * whose scores were replaced by constants */
                for (int t = 0; t < T; t++) {
                    const float *p = ah + (size_t)t * Tk;
                    float *d = dp + (size_t)t * Tk;
                    const attn_row *r = &rows[b * T + t];
                    if (!(r->lo1 < r->hi1) && !(r->lo2 < r->hi2)) {
                        memset(d, 0, (size_t)Tk * sizeof(float));
                        continue;
                    }
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int j = 0; j < Tk; j++)
                        dot += p[j] * d[j];
#pragma omp simd
                    for (int j = 0; j < Tk; j++)
                        d[j] = p[j] * (d[j] - dot);
                }
                /* dQ(T,hd) += scale · dS · K ; dK(Tk,hd) += scale · dS^T · Q */
                if (dq)
                    blas_sgemm(0, 0, T, hd, Tk, scale, dp, Tk, k + koff, ldk, bq, dq + qoff, ldq);
                if (dk)
                    blas_sgemm(1, 0, Tk, hd, T, scale, dp, Tk, q + qoff, ldq, bkv, dk + koff, ldk);
            }
        }
        free(dp);
        free(pd);
    }
}

void attention_forward_naive(float *out, float *att, const float *q, int ldq, const float *k,
                             int ldk, const float *v, int ldv, int64_t kv_bstride,
                             const attn_row *rows, int B, int T, int Tk, int C, int H) {
    HDLM_ASSERT(H > 0 && C % H == 0 && Tk > 0);
    int hd = C / H;
    double scale = 1.0 / sqrt((double)hd);
    double *p = malloc((size_t)Tk * sizeof(double));
    HDLM_ASSERT(p);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            for (int t = 0; t < T; t++) {
                const attn_row *r = &rows[b * T + t];
                const float *qt = q + (size_t)(b * T + t) * ldq + (size_t)h * hd;
                int any = 0;
                double m = -INFINITY;
                for (int j = 0; j < Tk; j++) {
                    int ok = (j >= r->lo1 && j < r->hi1) || (j >= r->lo2 && j < r->hi2);
                    if (!ok) {
                        p[j] = NAN; /* marks blocked */
                        continue;
                    }
                    const float *kj = k + b * kv_bstride + (size_t)j * ldk + (size_t)h * hd;
                    double s = 0.0;
                    for (int i = 0; i < hd; i++)
                        s += (double)qt[i] * kj[i];
                    p[j] = s * scale;
                    m = p[j] > m ? p[j] : m;
                    any = 1;
                }
                double sum = 0.0;
                for (int j = 0; j < Tk; j++) {
                    if (!any)
                        p[j] = 1.0; /* fully blocked: scores 0 for every key */
                    else
                        p[j] = isnan(p[j]) ? 0.0 : exp(p[j] - m);
                    sum += p[j];
                }
                float *at = att + (((size_t)b * H + h) * T + t) * Tk;
                for (int j = 0; j < Tk; j++)
                    at[j] = (float)(p[j] / sum);
                float *ot = out + (size_t)(b * T + t) * C + (size_t)h * hd;
                for (int i = 0; i < hd; i++) {
                    double acc = 0.0;
                    for (int j = 0; j < Tk; j++)
                        acc +=
                            p[j] / sum * v[b * kv_bstride + (size_t)j * ldv + (size_t)h * hd + i];
                    ot[i] = (float)acc;
                }
            }
        }
    }
    free(p);
}

/* ---------------------------------------------------------------------------------------------- */
/* cross-entropy                                                                                  */

/* max and Σ exp(x - max) of one row of logits */
static inline CPU_INLINE void softmax_stats_body(const float *x, int V, float *max_out,
                                                 float *sum_out) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int j = 0; j < V; j++)
        m = x[j] > m ? x[j] : m;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < V; j++)
        s += fast_expf(x[j] - m);
    *max_out = m;
    *sum_out = s;
}
CPU_KERNEL(softmax_stats, softmax_stats_body,
           (const float *x, int V, float *max_out, float *sum_out), (x, V, max_out, sum_out))

/* d += w·softmax(x) over one row of V logits (e: scratch for the exps) */
static inline CPU_INLINE void xent_backward_row_body(float *d, float *e, const float *x, int V,
                                                     float w) {
    float m = -INFINITY, s = 0.0f;
#pragma omp simd reduction(max : m)
    for (int j = 0; j < V; j++)
        m = x[j] > m ? x[j] : m;
        /* one exp per logit: kept in e (L1/L2-resident) between the sum and the update */
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < V; j++) {
        e[j] = fast_expf(x[j] - m);
        s += e[j];
    }
    float c = w / s;
#pragma omp simd
    for (int j = 0; j < V; j++)
        d[j] += e[j] * c;
}
CPU_KERNEL(xent_backward_row, xent_backward_row_body,
           (float *d, float *e, const float *x, int V, float w), (d, e, x, V, w))

/* one row's cross-entropy and, with d, its gradient (crossentropy_row) */
static inline CPU_INLINE void xent_row_body(double *ce, float *d, const float *x, int V, int y,
                                            double g) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int j = 0; j < V; j++)
        m = x[j] > m ? x[j] : m;
    const double md = m;
    double s = 0.0;
    if (!d) {
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < V; j++)
            s += fast_exp((double)x[j] - md);
        *ce = md + log(s) - (double)x[y];
        return;
    }
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < V; j++) {
        double e = fast_exp((double)x[j] - md);
        d[j] = (float)e; /* kept for the scaling below: one exp per logit */
        s += e;
    }
    const double c = g / s;
#pragma omp simd
    for (int j = 0; j < V; j++)
        d[j] = (float)(c * (double)d[j]);
    d[y] = (float)(g * (fast_exp((double)x[y] - md) / s - 1.0));
    *ce = md + log(s) - (double)x[y];
}
CPU_KERNEL(xent_row, xent_row_body, (double *ce, float *d, const float *x, int V, int y, double g),
           (ce, d, x, V, y, g))

double crossentropy_row(float *d, const float *x, int V, int y, double g) {
    HDLM_ASSERT(V > 0 && y >= 0 && y < V);
    double ce;
    xent_row(&ce, d, x, V, y, g);
    return ce;
}

void crossentropy_forward(float *loss, const float *logits, const int32_t *target, int N, int V) {
#pragma omp parallel for schedule(static) if ((int64_t)N * V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        if (target[n] < 0) {
            loss[n] = 0.0f;
            continue;
        }
        HDLM_ASSERT(target[n] < V);
        const float *x = logits + (size_t)n * V;
        float m, s;
        softmax_stats(x, V, &m, &s);
        loss[n] = logf(s) + m - x[target[n]];
    }
}

void crossentropy_backward(float *dlogits, const float *logits, const int32_t *target,
                           const float *dloss, int N, int V) {
#pragma omp parallel if ((int64_t)N * V >= PAR_MIN)
    {
        float *e = malloc((size_t)V * sizeof(float)); /* (V) exp(x - max) of the current row */
        HDLM_ASSERT(e);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            if (target[n] < 0) continue;
            HDLM_ASSERT(target[n] < V);
            const float *x = logits + (size_t)n * V;
            float *d = dlogits + (size_t)n * V;
            float w = dloss ? dloss[n] : 1.0f;
            xent_backward_row(d, e, x, V, w);
            d[target[n]] -= w;
        }
        free(e);
    }
}
