/* bf16 conversion, the oneDNN bf16 GEMM with its primitive cache, and the AVX512_BF16 few-row
 * GEMV (see bf16.h). The only file that includes <dnnl.h>; without HDLM_HAVE_DNNL the GEMM is
 * absent and bf16_check refuses with a message naming oneDNN. */
#include "tensor/bf16.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(HDLM_HAVE_DNNL)
#include <oneapi/dnnl/dnnl.h>
#endif

/* ---- availability -----------------------------------------------------------------------------
 */

int bf16_built(void) {
#if defined(HDLM_HAVE_DNNL)
    return 1;
#else
    return 0;
#endif
}

/* The CPU feature the kernels need, asked of the CPU at run time (never assumed from the build's
 * -march): VDPBF16PS for the GEMV; oneDNN picks its own bf16 kernels (avx512_core_bf16 or AMX). */
static int cpu_has_bf16(void) {
    const char *off = getenv("HDLM_NO_BF16");
    if (off && *off && strcmp(off, "0")) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
}

int bf16_check(const char *what, error *e) {
    if (!bf16_built())
        return error_set(e, HDLM_EINVAL,
                         "%s needs oneDNN: this hdlm was built without it (install libdnnl-dev and "
                         "rebuild: scripts/setup.sh build; -DHDLM_DNNL=OFF also turns it off)",
                         what);
    if (!cpu_has_bf16())
        return error_set(e, HDLM_EINVAL,
                         "%s needs a CPU with AVX512_BF16 (or AMX-BF16); this CPU has neither%s",
                         what, getenv("HDLM_NO_BF16") ? " (HDLM_NO_BF16 is set)" : "");
    return HDLM_OK;
}

/* ---- conversion
 * --------------------------------------------------------------------------------*/

#define BF16_PAR_MIN 65536

void bf16_convert(uint16_t *dst, const float *src, size_t n) {
    /* the integer form of round-to-nearest-even vectorises; NaN never appears in our operands
     * except through a bug upstream, and bf16_from_f32 keeps it a NaN */
#pragma omp parallel for schedule(static) if (n >= BF16_PAR_MIN && !omp_in_parallel())
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_from_f32(src[i]);
}

void bf16_convert_transposed(uint16_t *dst, const float *src, int rows, int cols, int ld) {
    /* 32x32 tiles keep both the reads and the writes within a few cache lines */
    enum { TB = 32 };
    int64_t ntile = (int64_t)((rows + TB - 1) / TB) * ((cols + TB - 1) / TB);
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols >= BF16_PAR_MIN &&              \
                                              !omp_in_parallel())
    for (int64_t tix = 0; tix < ntile; tix++) {
        int r0 = (int)(tix / ((cols + TB - 1) / TB)) * TB;
        int c0 = (int)(tix % ((cols + TB - 1) / TB)) * TB;
        int r1 = r0 + TB < rows ? r0 + TB : rows, c1 = c0 + TB < cols ? c0 + TB : cols;
        for (int c = c0; c < c1; c++)
            for (int r = r0; r < r1; r++)
                dst[(size_t)c * rows + r] = bf16_from_f32(src[(size_t)r * ld + c]);
    }
}

/* ---- GEMM -------------------------------------------------------------------------------------
 */

void bf16_gemm_naive(int ta, int tb, int M, int N, int K, const uint16_t *A, int lda,
                     const uint16_t *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int p = 0; p < K; p++) {
                double a = bf16_to_f32(ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]);
                double b = bf16_to_f32(tb ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j]);
                acc += a * b;
            }
            float *c = C + (size_t)i * ldc + j;
            *c = (float)(acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
    }
}

#if defined(HDLM_HAVE_DNNL)

/* One primitive per (transposes, shape, strides, beta): the model has a dozen distinct products,
 * decoding a few more (the rows of a block); beyond the cache's size the oldest entry goes. */
typedef struct gemm_key {
    int ta, tb, M, N, K, lda, ldb, ldc, accumulate;
} gemm_key;

typedef struct gemm_entry {
    gemm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
    dnnl_memory_t scratch; /* NULL when the primitive needs none */
    size_t scratch_bytes;
    uint64_t used; /* last use, for eviction */
} gemm_entry;

#define GEMM_CACHE 256
#define GEMM_ROWS  128 /* row block of products whose row count varies (bf16_gemm) */
#define GEMM_PAD   16  /* the last block's rows are rounded up to a multiple of this */
#define GEMM_EXACT 64  /* up to this many rows: the exact count (decoding: 1, 8, 16 rows ...) */
static gemm_entry gemm_cache[GEMM_CACHE];
static int gemm_count;
static uint64_t gemm_clock;
static dnnl_engine_t gemm_engine;
static dnnl_stream_t gemm_stream;
/* One scratchpad for every primitive, kept across calls (they run one at a time). oneDNN's own
 * ("library") scratchpad is allocated and freed around each execution: hundreds of fresh pages,
 * zeroed by the kernel, per training step. */
static void *scratch_buf;
static size_t scratch_cap;
/* the padded last row block of a product (bf16_gemm): (GEMM_ROWS, K) of A, (GEMM_ROWS, N) of C */
static void *pad_a_buf, *pad_c_buf;
static size_t pad_a_cap, pad_c_cap;

#define DNNL_OK(call)                                                                              \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            fprintf(stderr, "hdlm: oneDNN call failed (status %d): %s\n", (int)st_, #call);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void entry_free(gemm_entry *g) {
    if (g->prim) dnnl_primitive_destroy(g->prim);
    if (g->a) dnnl_memory_destroy(g->a);
    if (g->b) dnnl_memory_destroy(g->b);
    if (g->c) dnnl_memory_destroy(g->c);
    if (g->scratch) dnnl_memory_destroy(g->scratch);
    memset(g, 0, sizeof *g);
}

void bf16_release(void) {
    for (int i = 0; i < gemm_count; i++)
        entry_free(&gemm_cache[i]);
    gemm_count = 0;
    if (gemm_stream) dnnl_stream_destroy(gemm_stream);
    if (gemm_engine) dnnl_engine_destroy(gemm_engine);
    gemm_stream = NULL;
    gemm_engine = NULL;
    free(scratch_buf);
    scratch_buf = NULL;
    scratch_cap = 0;
    free(pad_a_buf), free(pad_c_buf);
    pad_a_buf = NULL, pad_c_buf = NULL;
    pad_a_cap = pad_c_cap = 0;
}

static void entry_build(gemm_entry *g, const gemm_key *k) {
    if (!gemm_engine) {
        DNNL_OK(dnnl_engine_create(&gemm_engine, dnnl_cpu, 0));
        DNNL_OK(dnnl_stream_create(&gemm_stream, gemm_engine, dnnl_stream_default_flags));
    }
    /* op(A) (M,K), op(B) (K,N), C (M,N) described by strides: a transposed operand is the same
     * memory read with swapped strides, so no copy is made here */
    dnnl_memory_desc_t amd, bmd, cmd;
    dnnl_dims_t ad = {k->M, k->K}, as = {k->ta ? 1 : k->lda, k->ta ? k->lda : 1};
    dnnl_dims_t bd = {k->K, k->N}, bs = {k->tb ? 1 : k->ldb, k->tb ? k->ldb : 1};
    dnnl_dims_t cd = {k->M, k->N}, cs = {k->ldc, 1};
    DNNL_OK(dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_bf16, as));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_bf16, bs));
    DNNL_OK(dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs));
    dnnl_matmul_desc_t mm;
    DNNL_OK(dnnl_matmul_desc_init(&mm, &amd, &bmd, NULL, &cmd));
    dnnl_primitive_attr_t attr;
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    DNNL_OK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_post_ops_t po = NULL;
    if (k->accumulate) { /* C += product: oneDNN's sum post-op reads C in place */
        DNNL_OK(dnnl_post_ops_create(&po));
        DNNL_OK(dnnl_post_ops_append_sum(po, 1.0f));
        DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &mm, attr, gemm_engine, NULL));
    DNNL_OK(dnnl_primitive_create(&g->prim, pd));
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    g->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (g->scratch_bytes)
        DNNL_OK(dnnl_memory_create(&g->scratch, smd, gemm_engine, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_primitive_desc_destroy(pd));
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    DNNL_OK(dnnl_memory_create(&g->a, &amd, gemm_engine, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&g->b, &bmd, gemm_engine, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&g->c, &cmd, gemm_engine, DNNL_MEMORY_NONE));
    g->key = *k;
}

static gemm_entry *entry_get(const gemm_key *k) {
    gemm_clock++;
    for (int i = 0; i < gemm_count; i++)
        if (!memcmp(&gemm_cache[i].key, k, sizeof *k)) {
            gemm_cache[i].used = gemm_clock;
            return &gemm_cache[i];
        }
    gemm_entry *g;
    if (gemm_count < GEMM_CACHE) {
        g = &gemm_cache[gemm_count++];
    } else {
        g = &gemm_cache[0];
        for (int i = 1; i < GEMM_CACHE; i++)
            if (gemm_cache[i].used < g->used) g = &gemm_cache[i];
        entry_free(g);
    }
    entry_build(g, k);
    g->used = gemm_clock;
    return g;
}

/* Grows a kept 64-byte-aligned buffer to at least `need` bytes (its old contents are not kept). */
static void *grow_kept(void **buf, size_t *cap, size_t need, const char *what) {
    if (need <= *cap) return *buf;
    free(*buf);
    *cap = (need + 4095) & ~(size_t)4095;
    *buf = aligned_alloc(64, *cap);
    if (!*buf) {
        fprintf(stderr, "hdlm: out of memory for %zu bytes of %s\n", *cap, what);
        abort();
    }
    return *buf;
}

/* One product through the cached primitive of its exact shape. */
static void gemm_run(int ta, int tb, int M, int N, int K, const uint16_t *A, int lda,
                     const uint16_t *B, int ldb, float beta, float *C, int ldc) {
    gemm_key k;
    memset(&k, 0, sizeof k); /* compared with memcmp */
    k.ta = !!ta, k.tb = !!tb, k.M = M, k.N = N, k.K = K, k.lda = lda, k.ldb = ldb, k.ldc = ldc;
    k.accumulate = beta != 0.0f;
    gemm_entry *g = entry_get(&k);
    DNNL_OK(dnnl_memory_set_data_handle(g->a, (void *)A));
    DNNL_OK(dnnl_memory_set_data_handle(g->b, (void *)B));
    DNNL_OK(dnnl_memory_set_data_handle(g->c, C));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, g->a},
                               {DNNL_ARG_WEIGHTS, g->b},
                               {DNNL_ARG_DST, g->c},
                               {DNNL_ARG_SCRATCHPAD, g->scratch}};
    if (g->scratch)
        DNNL_OK(dnnl_memory_set_data_handle(
            g->scratch,
            grow_kept(&scratch_buf, &scratch_cap, g->scratch_bytes, "oneDNN scratchpad")));
    DNNL_OK(dnnl_primitive_execute(g->prim, gemm_stream, g->scratch ? 4 : 3, args));
    DNNL_OK(dnnl_stream_wait(gemm_stream));
}

void bf16_gemm(int ta, int tb, int M, int N, int K, const uint16_t *A, int lda, const uint16_t *B,
               int ldb, float beta, float *C, int ldc) {
    HDLM_ASSERT(M >= 0 && N >= 0 && K >= 0);
    HDLM_ASSERT(beta == 0.0f || beta == 1.0f);
    HDLM_ASSERT(!omp_in_parallel()); /* the cache is not locked */
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : C[(size_t)i * ldc + j];
        return;
    }
    if (ta || M <= GEMM_EXACT || M % GEMM_ROWS == 0) {
        gemm_run(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* rows in whole blocks of GEMM_ROWS, then the remainder rounded up to a multiple of GEMM_PAD
     * through padding rows: the product's row count varies from step to step in training (the
     * rows that carry a loss), and each new count would compile a new oneDNN kernel; this way a
     * shape has at most 2048 / GEMM_ROWS + GEMM_ROWS / GEMM_PAD kernels, for at most
     * GEMM_PAD - 1 wasted rows. Small counts (decoding) stay exact: they are few and repeat. */
    int bulk = M - M % GEMM_ROWS, r = M - bulk, rp = (r + GEMM_PAD - 1) / GEMM_PAD * GEMM_PAD;
    if (bulk) gemm_run(0, tb, bulk, N, K, A, lda, B, ldb, beta, C, ldc);
    if (r == rp) { /* the remainder is already a multiple of GEMM_PAD */
        gemm_run(0, tb, r, N, K, A + (size_t)bulk * lda, lda, B, ldb, beta, C + (size_t)bulk * ldc,
                 ldc);
        return;
    }
    uint16_t *pad_a =
        grow_kept(&pad_a_buf, &pad_a_cap, (size_t)GEMM_ROWS * K * sizeof *pad_a, "padding rows");
    float *pad_c =
        grow_kept(&pad_c_buf, &pad_c_cap, (size_t)GEMM_ROWS * N * sizeof *pad_c, "padding rows");
    const uint16_t *Ar = A + (size_t)bulk * lda; /* (r, K) rows of A, then zero rows */
    float *Cr = C + (size_t)bulk * ldc;
    for (int i = 0; i < r; i++) {
        memcpy(pad_a + (size_t)i * K, Ar + (size_t)i * lda, (size_t)K * sizeof *pad_a);
        if (beta != 0.0f)
            memcpy(pad_c + (size_t)i * N, Cr + (size_t)i * ldc, (size_t)N * sizeof *pad_c);
    }
    memset(pad_a + (size_t)r * K, 0, (size_t)(rp - r) * K * sizeof *pad_a);
    gemm_run(0, tb, rp, N, K, pad_a, K, B, ldb, beta, pad_c, N);
    for (int i = 0; i < r; i++)
        memcpy(Cr + (size_t)i * ldc, pad_c + (size_t)i * N, (size_t)N * sizeof *pad_c);
}

#else

void bf16_release(void) {}

void bf16_gemm(int ta, int tb, int M, int N, int K, const uint16_t *A, int lda, const uint16_t *B,
               int ldb, float beta, float *C, int ldc) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb;
    (void)beta, (void)C, (void)ldc;
    HDLM_ASSERT(!"bf16_gemm without oneDNN: callers check bf16_check first");
}

#endif

/* ---- few-row GEMV -----------------------------------------------------------------------------
 */

void bf16_gemv_rows_scalar(float *out, const uint16_t *x, const uint16_t *w, const float *bias,
                           int N, int C, int OC, int lo, int hi) {
    for (int o = lo; o < hi; o++)
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int c = 0; c < C; c++)
                s += (double)(bf16_to_f32(x[(size_t)n * C + c]) *
                              bf16_to_f32(w[(size_t)o * C + c])); /* exact in float32 */
            out[(size_t)n * OC + o] = (float)s + (bias ? bias[o] : 0.0f);
        }
}

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* NB rows of x (a compile-time constant after inlining) against one weight row: every 32-value
 * chunk of w is loaded once and used NB times; one VDPBF16PS per chunk and row (16 lanes, each
 * summing a pair of products into float32). The tail (C % 32 values) is a masked load. */
BF16_TARGET static inline __attribute__((always_inline)) void
gemv_block(float *out, const uint16_t *x, const uint16_t *wo, const float *bias, int NB, int C,
           int OC, int o) {
    __m512 acc[8];
    for (int n = 0; n < NB; n++)
        acc[n] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 32 <= C; c += 32) {
        __m512i wv = _mm512_loadu_si512((const void *)(wo + c));
        for (int n = 0; n < NB; n++) {
            __m512i xv = _mm512_loadu_si512((const void *)(x + (size_t)n * C + c));
            acc[n] = _mm512_dpbf16_ps(acc[n], (__m512bh)xv, (__m512bh)wv);
        }
    }
    if (c < C) {
        __mmask32 m = (__mmask32)((1ull << (C - c)) - 1ull);
        __m512i wv = _mm512_maskz_loadu_epi16(m, wo + c);
        for (int n = 0; n < NB; n++) {
            __m512i xv = _mm512_maskz_loadu_epi16(m, x + (size_t)n * C + c);
            acc[n] = _mm512_dpbf16_ps(acc[n], (__m512bh)xv, (__m512bh)wv);
        }
    }
    float b = bias ? bias[o] : 0.0f;
    for (int n = 0; n < NB; n++)
        out[(size_t)n * OC + o] = _mm512_reduce_add_ps(acc[n]) + b;
}

BF16_TARGET static void gemv_rows_avx512bf16(float *out, const uint16_t *x, const uint16_t *w,
                                             const float *bias, int N, int C, int OC, int lo,
                                             int hi) {
    for (int o = lo; o < hi; o++) {
        const uint16_t *wo = w + (size_t)o * C;
        /* rows of x in groups of up to 4: the accumulators stay in registers */
        for (int n0 = 0; n0 < N; n0 += 4) {
            int nb = N - n0 < 4 ? N - n0 : 4;
            const uint16_t *xn = x + (size_t)n0 * C;
            float *on = out + (size_t)n0 * OC;
            switch (nb) {
            case 1:
                gemv_block(on, xn, wo, bias, 1, C, OC, o);
                break;
            case 2:
                gemv_block(on, xn, wo, bias, 2, C, OC, o);
                break;
            case 3:
                gemv_block(on, xn, wo, bias, 3, C, OC, o);
                break;
            default:
                gemv_block(on, xn, wo, bias, 4, C, OC, o);
                break;
            }
        }
    }
}

int bf16_gemv_native(void) {
    static int known = -1;
    if (known < 0) known = cpu_has_bf16();
    return known;
}

void bf16_gemv_rows(float *out, const uint16_t *x, const uint16_t *w, const float *bias, int N,
                    int C, int OC, int lo, int hi) {
    HDLM_ASSERT(C % 2 == 0);
    if (bf16_gemv_native())
        gemv_rows_avx512bf16(out, x, w, bias, N, C, OC, lo, hi);
    else
        bf16_gemv_rows_scalar(out, x, w, bias, N, C, OC, lo, hi);
}
