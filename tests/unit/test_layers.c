/* Every backward of nn/layers against central finite differences of L = Σ out ⊙ R (fixed random
 * R), with gradient buffers pre-filled with random values to check that backward accumulates;
 * forwards against plain double references (linear, attention, rope, GELU, SiLU, LayerNorm,
 * cross-entropy), the spec's attention masks built by hand, and shapes large enough to take the
 * multi-threaded paths. */
#include "base/rng.h"
#include "check.h"
#include "nn/layers.h"
#include "tensor/blas.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static rng g_rng;

static float *buf_rand(int64_t n, float lo, float hi) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * rng_uniform_f32(&g_rng);
    return p;
}

static float *buf_copy(const float *x, int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    memcpy(p, x, (size_t)n * sizeof(float));
    return p;
}

static double dot_R(const float *out, const float *R, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)out[i] * R[i];
    return s;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        m = d > m ? d : m;
    }
    return m;
}

/* ---- finite differences ---------------------------------------------------------------------- */

typedef double (*loss_fn)(void *ctx);

/* Compares grad[i] - prior[i] (prior NULL: 0) with the central difference of f in x[i].
 * Pass: |num - ana| <= 2e-3 + 1e-2·max(|num|, |ana|) for every element. */
static void check_fd(const char *what, float *x, int64_t n, const float *grad, const float *prior,
                     loss_fn f, void *ctx) {
    const double h = 1e-3;
    /* the perturbed forwards run on one thread: thousands of tiny parallel regions are slow on a
     * loaded machine, and the threaded forwards are compared with references elsewhere */
    int threads = blas_get_threads();
    blas_set_threads(1);
    double worst = 0.0;
    int64_t wi = -1;
    double wnum = 0.0, wana = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float save = x[i];
        float xp = (float)(save + h), xm = (float)(save - h);
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = save;
        double num = (lp - lm) / ((double)xp - (double)xm);
        double ana = (double)grad[i] - (prior ? (double)prior[i] : 0.0);
        double mag = fabs(num) > fabs(ana) ? fabs(num) : fabs(ana);
        double ratio = fabs(num - ana) / (2e-3 + 1e-2 * mag);
        if (ratio > worst) worst = ratio, wi = i, wnum = num, wana = ana;
    }
    blas_set_threads(threads);
    if (worst > 1.0)
        fprintf(stderr, "FD %s: element %lld numeric %.6g analytic %.6g\n", what, (long long)wi,
                wnum, wana);
    CHECK(worst <= 1.0);
}

/* ---- linear ---------------------------------------------------------------------------------- */

typedef struct lin_ctx {
    float *inp, *w, *bias, *out, *R;
    int N, C, OC;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    linear_forward(c->out, c->inp, c->w, c->bias, c->N, c->C, c->OC);
    return dot_R(c->out, c->R, (int64_t)c->N * c->OC);
}

static void test_linear(int with_bias) {
    int N = 5, C = 7, OC = 6;
    lin_ctx c = {buf_rand(N * C, -1, 1),
                 buf_rand(OC * C, -1, 1),
                 NULL,
                 buf_rand(N * OC, 0, 0),
                 buf_rand(N * OC, -1, 1),
                 N,
                 C,
                 OC};
    if (with_bias) c.bias = buf_rand(OC, -1, 1);
    float *p_in = buf_rand(N * C, -1, 1), *p_w = buf_rand(OC * C, -1, 1),
          *p_b = buf_rand(OC, -1, 1);
    float *din = buf_copy(p_in, N * C), *dw = buf_copy(p_w, OC * C), *db = buf_copy(p_b, OC);
    lin_loss(&c);
    /* forward against the naive loops */
    float *ref = buf_rand(N * OC, 0, 0);
    linear_forward_naive(ref, c.inp, c.w, c.bias, N, C, OC);
    CHECK(max_abs_diff(ref, c.out, N * OC) < 1e-5);
    linear_backward(din, dw, with_bias ? db : NULL, c.R, c.inp, c.w, N, C, OC);
    check_fd("linear dinp", c.inp, N * C, din, p_in, lin_loss, &c);
    check_fd("linear dw", c.w, OC * C, dw, p_w, lin_loss, &c);
    if (with_bias)
        check_fd("linear dbias", c.bias, OC, db, p_b, lin_loss, &c);
    else
        CHECK(max_abs_diff(db, p_b, OC) == 0.0); /* untouched */
    /* dinp NULL: dw still right (same delta as before, added a second time) */
    float *dw2 = buf_copy(dw, OC * C);
    linear_backward(NULL, dw2, NULL, c.R, c.inp, c.w, N, C, OC);
    double e = 0.0;
    for (int i = 0; i < OC * C; i++) {
        double d = fabs((double)(dw2[i] - dw[i]) - (double)(dw[i] - p_w[i]));
        e = d > e ? d : e;
    }
    CHECK(e < 1e-5);
    /* linear_backward_into overwrites dinp (garbage before, NaN included) and accumulates dw */
    float *din2 = buf_rand(N * C, -9, 9), *dw3 = buf_copy(p_w, OC * C);
    din2[0] = NAN;
    linear_backward_into(din2, dw3, NULL, c.R, c.inp, c.w, N, C, OC);
    double ei = 0.0, ew = 0.0;
    for (int i = 0; i < N * C; i++)
        ei = fabs((double)din2[i] - (double)(din[i] - p_in[i])) > ei
                 ? fabs((double)din2[i] - (double)(din[i] - p_in[i]))
                 : ei;
    for (int i = 0; i < OC * C; i++)
        ew = fabs((double)dw3[i] - (double)dw[i]) > ew ? fabs((double)dw3[i] - (double)dw[i]) : ew;
    CHECK(ei < 1e-5);
    CHECK(ew < 1e-5);
    free(din2), free(dw3);
    free(c.inp), free(c.w), free(c.bias), free(c.out), free(c.R), free(p_in), free(p_w), free(p_b);
    free(din), free(dw), free(db), free(ref), free(dw2);
}

/* linear on a (64,96)->(80) case equals the naive loops; dbias on a size that runs threaded */
static void test_linear_sanity(void) {
    int N = 64, C = 96, OC = 80;
    float *x = buf_rand(N * C, -1, 1), *w = buf_rand(OC * C, -1, 1), *b = buf_rand(OC, -1, 1);
    float *o1 = buf_rand(N * OC, 0, 0), *o2 = buf_rand(N * OC, 0, 0);
    linear_forward(o1, x, w, b, N, C, OC);
    linear_forward_naive(o2, x, w, b, N, C, OC);
    CHECK(max_abs_diff(o1, o2, N * OC) < 1e-4);
    int N2 = 400; /* 400·80 elements > the threading threshold */
    float *g = buf_rand(N2 * OC, -1, 1), *db = buf_rand(OC, 0, 0);
    float *x2 = buf_rand(N2 * C, -1, 1), *dw = buf_rand(OC * C, 0, 0);
    linear_backward(NULL, dw, db, g, x2, w, N2, C, OC);
    double e = 0.0;
    for (int o = 0; o < OC; o++) {
        double s = 0.0;
        for (int n = 0; n < N2; n++)
            s += g[n * OC + o];
        e = fabs(s - db[o]) > e ? fabs(s - db[o]) : e;
    }
    CHECK(e < 1e-4);
    free(x), free(w), free(b), free(o1), free(o2), free(g), free(db), free(x2), free(dw);
}

/* ---- embeddings ------------------------------------------------------------------------------ */

typedef struct emb_ctx {
    float *wte, *w, *out, *R;
    const int32_t *tok;
    int N, C, mask_id; /* mask_id < 0: plain embedding */
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    if (c->mask_id < 0)
        embedding_forward(c->out, c->tok, c->wte, c->N, c->C);
    else
        embedding_mix_forward(c->out, c->tok, c->w, c->wte, c->mask_id, c->N, c->C);
    return dot_R(c->out, c->R, (int64_t)c->N * c->C);
}

static void test_embedding(int mix) {
    enum { V = 6, N = 7, C = 5 };
    const int32_t tok[N] = {1, 3, 1, 0, 5, 3, 5}; /* repeats; 5 is the mask id in the mix case */
    emb_ctx c = {buf_rand(V * C, -1, 1),
                 buf_rand(N, 0.05f, 0.95f),
                 buf_rand(N * C, 0, 0),
                 buf_rand(N * C, -1, 1),
                 tok,
                 N,
                 C,
                 mix ? 5 : -1};
    float *prior = buf_rand(V * C, -1, 1), *d = buf_copy(prior, V * C);
    emb_loss(&c);
    if (mix) {
        /* a token row by hand: out_1 = w_1 E[3] + (1-w_1) E[5] */
        CHECK_NEAR(c.out[1 * C + 2], c.w[1] * c.wte[3 * C + 2] + (1 - c.w[1]) * c.wte[5 * C + 2],
                   1e-6);
        embedding_mix_backward(d, c.R, tok, c.w, 5, N, C);
    } else {
        CHECK_NEAR(c.out[4 * C + 3], c.wte[5 * C + 3], 0);
        embedding_backward(d, c.R, tok, N, C);
    }
    check_fd(mix ? "embedding_mix dwte" : "embedding dwte", c.wte, V * C, d, prior, emb_loss, &c);
    free(c.wte), free(c.w), free(c.out), free(c.R), free(prior), free(d);
}

/* the column-split threaded backward against a serial sum */
static void test_embedding_large(void) {
    int V = 50, N = 3000, C = 16, mask_id = 49;
    int32_t *tok = malloc((size_t)N * sizeof(int32_t));
    for (int n = 0; n < N; n++)
        tok[n] = (int32_t)rng_below(&g_rng, (uint64_t)V);
    float *g = buf_rand(N * C, -1, 1), *w = buf_rand(N, 0, 1);
    float *d1 = buf_rand(V * C, 0, 0), *d2 = buf_rand(V * C, 0, 0);
    double *ref1 = calloc((size_t)V * C, sizeof(double)),
           *ref2 = calloc((size_t)V * C, sizeof(double));
    embedding_backward(d1, g, tok, N, C);
    embedding_mix_backward(d2, g, tok, w, mask_id, N, C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            ref1[tok[n] * C + c] += g[n * C + c];
            ref2[tok[n] * C + c] += w[n] * g[n * C + c];
            ref2[mask_id * C + c] += (1.0 - w[n]) * g[n * C + c];
        }
    double e1 = 0.0, e2 = 0.0;
    for (int i = 0; i < V * C; i++) {
        e1 = fabs(ref1[i] - d1[i]) > e1 ? fabs(ref1[i] - d1[i]) : e1;
        e2 = fabs(ref2[i] - d2[i]) > e2 ? fabs(ref2[i] - d2[i]) : e2;
    }
    CHECK(e1 < 1e-3);
    CHECK(e2 < 1e-2); /* the mask row sums ~1500 terms in float */
    free(tok), free(g), free(w), free(d1), free(d2), free(ref1), free(ref2);
}

/* ---- LayerNorm ------------------------------------------------------------------------------- */

typedef struct ln_ctx {
    float *inp, *weight, *out, *mean, *rstd, *R;
    int N, C;
} ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->weight, c->N, c->C);
    return dot_R(c->out, c->R, (int64_t)c->N * c->C);
}

/* double reference of forward + backward for one shape */
static void ln_reference(double *out, double *dinp, double *dw, const float *x, const float *w,
                         const float *g, int N, int C) {
    for (int c = 0; c < C; c++)
        dw[c] = 0.0;
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++)
            m += xn[c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (xn[c] - m) * (xn[c] - m);
        v /= C;
        double rs = 1.0 / sqrt(v + 1e-5), a = 0.0, b = 0.0;
        for (int c = 0; c < C; c++) {
            double norm = (xn[c] - m) * rs;
            out[(size_t)n * C + c] = norm * w[c];
            a += g[(size_t)n * C + c] * w[c];
            b += g[(size_t)n * C + c] * w[c] * norm;
            dw[c] += g[(size_t)n * C + c] * norm;
        }
        a /= C, b /= C;
        for (int c = 0; c < C; c++) {
            double norm = (xn[c] - m) * rs;
            dinp[(size_t)n * C + c] = (g[(size_t)n * C + c] * w[c] - a - norm * b) * rs;
        }
    }
}

static void test_layernorm(void) {
    int N = 4, C = 8;
    ln_ctx c = {buf_rand(N * C, -2, 2),
                buf_rand(C, 0.5f, 1.5f),
                buf_rand(N * C, 0, 0),
                buf_rand(N, 0, 0),
                buf_rand(N, 0, 0),
                buf_rand(N * C, -1, 1),
                N,
                C};
    float *p_in = buf_rand(N * C, -1, 1), *p_w = buf_rand(C, -1, 1);
    float *din = buf_copy(p_in, N * C), *dw = buf_copy(p_w, C);
    ln_loss(&c);
    /* row 0 by hand: mean/rstd */
    double m = 0.0, v = 0.0;
    for (int i = 0; i < C; i++)
        m += c.inp[i];
    m /= C;
    for (int i = 0; i < C; i++)
        v += (c.inp[i] - m) * (c.inp[i] - m);
    CHECK_NEAR(c.mean[0], m, 1e-6);
    CHECK_NEAR(c.rstd[0], 1.0 / sqrt(v / C + 1e-5), 1e-4);
    layernorm_backward(din, dw, c.R, c.inp, c.weight, c.mean, c.rstd, N, C);
    check_fd("layernorm dinp", c.inp, N * C, din, p_in, ln_loss, &c);
    check_fd("layernorm dweight", c.weight, C, dw, p_w, ln_loss, &c);
    free(c.inp), free(c.weight), free(c.out), free(c.mean), free(c.rstd), free(c.R);
    free(p_in), free(p_w), free(din), free(dw);

    /* threaded path (per-thread dweight partials) against the double reference */
    int N2 = 600, C2 = 64;
    float *x = buf_rand(N2 * C2, -3, 3), *w = buf_rand(C2, 0.5f, 1.5f),
          *g = buf_rand(N2 * C2, -1, 1);
    float *o = buf_rand(N2 * C2, 0, 0), *mean = buf_rand(N2, 0, 0), *rstd = buf_rand(N2, 0, 0);
    float *di = buf_rand(N2 * C2, 0, 0), *dwt = buf_rand(C2, 0, 0);
    double *ro = malloc(sizeof(double) * N2 * C2), *rdi = malloc(sizeof(double) * N2 * C2);
    double *rdw = malloc(sizeof(double) * C2);
    layernorm_forward(o, mean, rstd, x, w, N2, C2);
    layernorm_backward(di, dwt, g, x, w, mean, rstd, N2, C2);
    ln_reference(ro, rdi, rdw, x, w, g, N2, C2);
    double eo = 0.0, ei = 0.0, ew = 0.0;
    for (int i = 0; i < N2 * C2; i++) {
        eo = fabs(ro[i] - o[i]) > eo ? fabs(ro[i] - o[i]) : eo;
        ei = fabs(rdi[i] - di[i]) > ei ? fabs(rdi[i] - di[i]) : ei;
    }
    for (int i = 0; i < C2; i++)
        ew = fabs(rdw[i] - dwt[i]) > ew ? fabs(rdw[i] - dwt[i]) : ew;
    CHECK(eo < 1e-5);
    CHECK(ei < 1e-5);
    CHECK(ew < 1e-3);
    free(x), free(w), free(g), free(o), free(mean), free(rstd), free(di), free(dwt);
    free(ro), free(rdi), free(rdw);
}

/* ---- modulate and residual ------------------------------------------------------------------- */

typedef struct mod_ctx {
    float *inp, *ada, *res, *out, *R; /* ada (rows, 6C): shift at 0, scale at C, gate at 2C */
    const int32_t *row;               /* token -> ada row (NULL: one row per token) */
    int N, C, gated;
} mod_ctx;

static double mod_loss(void *p) {
    mod_ctx *c = p;
    modulate_forward(c->out, c->inp, c->ada, c->ada + c->C, 6 * c->C, c->row, c->N, c->C);
    return dot_R(c->out, c->R, (int64_t)c->N * c->C);
}

static double res_loss(void *p) {
    mod_ctx *c = p;
    residual_forward(c->out, c->res, c->inp, c->gated ? c->ada + 2 * c->C : NULL, 6 * c->C, c->row,
                     c->N, c->C);
    return dot_R(c->out, c->R, (int64_t)c->N * c->C);
}

/* rows: ada rows (== N when row is NULL). With a row index several tokens share a row, and the
 * finite differences over the shared rows check that the backward sums their gradients. */
static void check_modulate_residual(int N, int C, int rows, const int32_t *row) {
    int ld = 6 * C;
    mod_ctx c = {buf_rand(N * C, -1, 1),
                 buf_rand(rows * ld, -1, 1),
                 buf_rand(N * C, -1, 1),
                 buf_rand(N * C, 0, 0),
                 buf_rand(N * C, -1, 1),
                 row,
                 N,
                 C,
                 1};
    float *p_in = buf_rand(N * C, -1, 1), *p_ada = buf_rand(rows * ld, -1, 1);
    float *p_res = buf_rand(N * C, -1, 1);
    float *din = buf_copy(p_in, N * C), *dada = buf_copy(p_ada, rows * ld);
    float *dres = buf_copy(p_res, N * C);
    int r2 = row ? row[2] : 2;

    /* modulate: FD over the whole (rows,6C) buffer also checks that the other slices get nothing */
    mod_loss(&c);
    CHECK_NEAR(c.out[2 * C + 3],
               c.inp[2 * C + 3] * (1 + c.ada[r2 * ld + C + 3]) + c.ada[r2 * ld + 3], 1e-6);
    modulate_backward(din, dada, dada + C, c.R, c.inp, c.ada + C, ld, row, N, C);
    check_fd("modulate dinp", c.inp, N * C, din, p_in, mod_loss, &c);
    check_fd("modulate dshift/dscale", c.ada, rows * ld, dada, p_ada, mod_loss, &c);

    /* gated residual */
    memcpy(din, p_in, sizeof(float) * N * C), memcpy(dada, p_ada, sizeof(float) * rows * ld);
    res_loss(&c);
    CHECK_NEAR(c.out[2 * C + 1], c.res[2 * C + 1] + c.ada[r2 * ld + 2 * C + 1] * c.inp[2 * C + 1],
               1e-6);
    residual_backward(dres, din, dada + 2 * C, c.R, c.inp, c.ada + 2 * C, ld, row, N, C);
    check_fd("residual dres", c.res, N * C, dres, p_res, res_loss, &c);
    check_fd("residual dx", c.inp, N * C, din, p_in, res_loss, &c);
    check_fd("residual dgate", c.ada, rows * ld, dada, p_ada, res_loss, &c);

    /* ungated; dres NULL leaves nothing behind */
    c.gated = 0;
    memcpy(din, p_in, sizeof(float) * N * C), memcpy(dres, p_res, sizeof(float) * N * C);
    res_loss(&c);
    CHECK_NEAR(c.out[7], c.res[7] + c.inp[7], 1e-6);
    residual_backward(dres, din, NULL, c.R, c.inp, NULL, ld, row, N, C);
    check_fd("residual dres (no gate)", c.res, N * C, dres, p_res, res_loss, &c);
    check_fd("residual dx (no gate)", c.inp, N * C, din, p_in, res_loss, &c);
    float *before = buf_copy(din, N * C);
    residual_backward(NULL, din, NULL, c.R, c.inp, NULL, ld, row, N, C);
    CHECK_NEAR(din[3] - before[3], c.R[3], 1e-6);
    free(before);
    free(c.inp), free(c.ada), free(c.res), free(c.out), free(c.R);
    free(p_in), free(p_ada), free(p_res), free(din), free(dada), free(dres);
}

static void test_modulate_residual(void) {
    check_modulate_residual(5, 8, 5, NULL);
    const int32_t shared[6] = {0, 1, 0, 2, 1, 1}; /* 6 tokens on 3 rows */
    check_modulate_residual(6, 8, 3, shared);
    /* threaded column split (N·C above the parallel threshold): grouped sums against a serial
     * per-token reference */
    int N = 700, C = 72, R = 7, ld = 6 * C;
    int32_t *row = malloc(sizeof(int32_t) * N);
    for (int n = 0; n < N; n++)
        row[n] = (n * 5 + n / 11) % R;
    float *x = buf_rand(N * C, -1, 1), *g = buf_rand(N * C, -1, 1), *ada = buf_rand(R * ld, -1, 1);
    float *dada = buf_rand(R * ld, 0, 0), *din = buf_rand(N * C, 0, 0);
    double *ref = calloc((size_t)R * ld, sizeof(double));
    modulate_backward(din, dada, dada + C, g, x, ada + C, ld, row, N, C);
    residual_backward(NULL, NULL, dada + 2 * C, g, x, ada + 2 * C, ld, row, N, C);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++) {
            double gk = g[n * C + k], xk = x[n * C + k];
            ref[row[n] * ld + k] += gk;
            ref[row[n] * ld + C + k] += gk * xk;
            ref[row[n] * ld + 2 * C + k] += gk * xk;
        }
    double err = 0.0, errin = 0.0;
    for (int i = 0; i < R * ld; i++)
        err = fabs(ref[i] - dada[i]) > err ? fabs(ref[i] - dada[i]) : err;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++) {
            double want = g[n * C + k] * (1.0 + ada[row[n] * ld + C + k]);
            errin = fabs(want - din[n * C + k]) > errin ? fabs(want - din[n * C + k]) : errin;
        }
    CHECK(err < 1e-4);
    CHECK(errin < 1e-6);
    free(row), free(x), free(g), free(ada), free(dada), free(din), free(ref);
}

/* ---- activations ----------------------------------------------------------------------------- */

typedef struct act_ctx {
    float *inp, *out, *R;
    int n, silu;
} act_ctx;

static double act_loss(void *p) {
    act_ctx *c = p;
    if (c->silu)
        silu_forward(c->out, c->inp, c->n);
    else
        gelu_forward(c->out, c->inp, c->n);
    return dot_R(c->out, c->R, c->n);
}

static void test_activation_fd(int silu) {
    int n = 60;
    act_ctx c = {buf_rand(n, -5, 5), buf_rand(n, 0, 0), buf_rand(n, -1, 1), n, silu};
    c.inp[0] = 0.0f, c.inp[1] = -0.001f, c.inp[2] = 0.7f;
    float *prior = buf_rand(n, -1, 1), *d = buf_copy(prior, n);
    act_loss(&c);
    if (silu)
        silu_backward(d, c.inp, c.R, n);
    else
        gelu_backward(d, c.inp, c.R, n);
    check_fd(silu ? "silu" : "gelu", c.inp, n, d, prior, act_loss, &c);
    if (!silu) { /* in-place form: d = GELU'(x)·d equals the accumulating form from zero */
        float *acc = buf_rand(n, 0, 0), *inpl = buf_copy(c.R, n);
        gelu_backward(acc, c.inp, c.R, n);
        gelu_backward_inplace(inpl, c.inp, n);
        CHECK(max_abs_diff(acc, inpl, n) == 0.0);
        free(acc), free(inpl);
    }
    free(c.inp), free(c.out), free(c.R), free(prior), free(d);
}

/* The fast exp/tanh inside GELU and SiLU against libm in double, over [-10, 10] on 1M points
 * (enough to run threaded). */
static void test_activation_accuracy(void) {
    int n = 1 << 20;
    float *x = malloc(sizeof(float) * n), *o = malloc(sizeof(float) * n);
    float *one = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++)
        x[i] = -10.0f + 20.0f * (float)i / (float)(n - 1), one[i] = 1.0f;
    const double K = sqrt(2.0 / M_PI), A = 0.044715;
    double ef = 0.0, eb = 0.0;
    gelu_forward(o, x, n);
    memset(d, 0, sizeof(float) * n);
    gelu_backward(d, x, one, n);
    for (int i = 0; i < n; i++) {
        double xi = x[i], u = K * (xi + A * xi * xi * xi), t = tanh(u);
        double ref = 0.5 * xi * (1.0 + t);
        double dref = 0.5 * (1.0 + t) + 0.5 * xi * (1.0 - t * t) * K * (1.0 + 3.0 * A * xi * xi);
        ef = fabs(ref - o[i]) > ef ? fabs(ref - o[i]) : ef;
        eb = fabs(dref - d[i]) > eb ? fabs(dref - d[i]) : eb;
    }
    printf("gelu max abs error vs tanh(): forward %.3g, backward %.3g\n", ef, eb);
    CHECK(ef < 1e-6);
    CHECK(eb < 1e-6);
    silu_forward(o, x, n);
    memset(d, 0, sizeof(float) * n);
    silu_backward(d, x, one, n);
    /* SiLU reaches |10| where one float ulp is 9.5e-7: error relative to max(1, |value|) */
    ef = eb = 0.0;
    for (int i = 0; i < n; i++) {
        double xi = x[i], s = 1.0 / (1.0 + exp(-xi));
        double rf = fabs(xi * s - o[i]) / fmax(1.0, fabs(xi * s));
        double dref = s + xi * s * (1.0 - s);
        double rb = fabs(dref - d[i]) / fmax(1.0, fabs(dref));
        ef = rf > ef ? rf : ef;
        eb = rb > eb ? rb : eb;
    }
    printf("silu max rel error: forward %.3g, backward %.3g\n", ef, eb);
    CHECK(ef < 2.5e-7);
    CHECK(eb < 2.5e-7);
    /* extremes: no NaN/inf, saturation */
    float big[4] = {-1e30f, -100.0f, 100.0f, 1e30f}, ob[4];
    gelu_forward(ob, big, 4);
    CHECK_NEAR(ob[0], 0.0, 0);
    CHECK_NEAR(ob[1], 0.0, 0);
    CHECK_NEAR(ob[2], 100.0, 0);
    CHECK_NEAR(ob[3], big[3], 0);
    silu_forward(ob, big, 4);
    CHECK_NEAR(ob[0], 0.0, 0);
    CHECK_NEAR(ob[1], 0.0, 0);
    CHECK_NEAR(ob[2], 100.0, 0);
    CHECK_NEAR(ob[3], big[3], 0);
    float dbig[4] = {0, 0, 0, 0}, ones4[4] = {1, 1, 1, 1};
    gelu_backward(dbig, big, ones4, 4);
    CHECK_NEAR(dbig[0], 0.0, 0);
    CHECK_NEAR(dbig[1], 0.0, 0);
    CHECK_NEAR(dbig[2], 1.0, 0);
    CHECK_NEAR(dbig[3], 1.0, 0);
    memset(dbig, 0, sizeof dbig);
    silu_backward(dbig, big, ones4, 4);
    CHECK_NEAR(dbig[0], 0.0, 0);
    CHECK_NEAR(dbig[1], 0.0, 0);
    CHECK_NEAR(dbig[2], 1.0, 0);
    CHECK_NEAR(dbig[3], 1.0, 0);
    free(x), free(o), free(one), free(d);
}

/* ---- timestep features ----------------------------------------------------------------------- */

static void test_timestep(void) {
    float sigma[3] = {0.0f, 0.37f, 5.5f};
    int dim = 256;
    float *o = malloc(sizeof(float) * 3 * dim);
    timestep_features(o, sigma, 3, dim);
    for (int n = 0; n < 3; n++) {
        for (int k = 0; k < 128; k += 9) {
            double w = exp(-log(10000.0) * k / 128.0);
            CHECK_NEAR(o[n * dim + k], cos(sigma[n] * w), 2e-6);
            CHECK_NEAR(o[n * dim + 128 + k], sin(sigma[n] * w), 2e-6);
        }
    }
    CHECK_NEAR(o[0], 1.0, 0);
    CHECK_NEAR(o[128], 0.0, 0); /* σ = 0: cos 1, sin 0 */
    float o5[2 * 5];
    timestep_features(o5, sigma + 1, 2, 5); /* odd dim: 2 cos, 2 sin, a zero */
    CHECK_NEAR(o5[0], cos(0.37), 1e-6);
    CHECK_NEAR(o5[2], sin(0.37), 1e-6);
    CHECK_NEAR(o5[4], 0.0, 0);
    CHECK_NEAR(o5[9], 0.0, 0);
    free(o);
}

/* ---- rotary ---------------------------------------------------------------------------------- */

typedef struct rope_ctx {
    float *x, *work, *R;
    const int32_t *pos;
    int N, ld, H, hd;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->work, c->x, sizeof(float) * c->N * c->ld);
    rope_forward(c->work, c->ld, c->pos, c->N, c->H, c->hd);
    return dot_R(c->work, c->R, (int64_t)c->N * c->ld);
}

static void test_rope(const int32_t *pos, int N) {
    int H = 2, hd = 8, C = H * hd, ld = 3 * C, half = hd / 2;
    /* a (N,3C) qkv buffer; rope on q and k together = 2H heads from column 0 */
    rope_ctx c = {buf_rand(N * ld, -1, 1),
                  buf_rand(N * ld, 0, 0),
                  buf_rand(N * ld, -1, 1),
                  pos,
                  N,
                  ld,
                  2 * H,
                  hd};
    rope_loss(&c);
    double e = 0.0;
    for (int n = 0; n < N; n++)
        for (int h = 0; h < 2 * H; h++)
            for (int k = 0; k < half; k++) {
                double th = pos[n] * pow(10000.0, -2.0 * k / hd);
                const float *x = c.x + n * ld + h * hd;
                double r1 = x[k] * cos(th) - x[k + half] * sin(th);
                double r2 = x[k + half] * cos(th) + x[k] * sin(th);
                const float *y = c.work + n * ld + h * hd;
                e = fabs(r1 - y[k]) > e ? fabs(r1 - y[k]) : e;
                e = fabs(r2 - y[k + half]) > e ? fabs(r2 - y[k + half]) : e;
            }
    /* tolerance: theta in float32 like the reference, |theta| up to ~1000 */
    CHECK(e < 2e-4);
    /* v columns untouched; rows at position 0 unchanged */
    int v_same = 1, p0_same = 1;
    for (int n = 0; n < N; n++) {
        for (int j = 2 * C; j < 3 * C; j++)
            v_same &= c.work[n * ld + j] == c.x[n * ld + j];
        if (pos[n] == 0)
            for (int j = 0; j < 2 * C; j++)
                p0_same &= c.work[n * ld + j] == c.x[n * ld + j];
    }
    CHECK(v_same);
    CHECK(p0_same);
    /* backward = inverse rotation: undoes forward */
    rope_backward(c.work, ld, pos, N, 2 * H, hd);
    CHECK(max_abs_diff(c.work, c.x, N * ld) < 1e-5);
    /* and is the gradient of Σ rope(x) ⊙ R */
    float *g = buf_copy(c.R, N * ld);
    rope_backward(g, ld, pos, N, 2 * H, hd);
    check_fd("rope", c.x, N * ld, g, NULL, rope_loss, &c);
    free(c.x), free(c.work), free(c.R), free(g);
}

/* ---- attention ------------------------------------------------------------------------------- */

typedef struct attn_ctx {
    const char *name;
    int B, T, Tk, C, H;
    float *qbuf, *kvbuf; /* packed: qkv (B*T, 3C) in qbuf; else q (B*T,C), k|v separate */
    float *q, *k, *v;    /* views */
    int ldq, ldk, ldv;
    int64_t kvs;
    int64_t nq, nkv;      /* element counts of qbuf, kvbuf */
    attn_row *rows;       /* (B,T) */
    float *out, *att, *R; /* (B,T,C), (B,H,T,Tk), (B,T,C) */
} attn_ctx;

static double attn_loss(void *p) {
    attn_ctx *c = p;
    attention_forward(c->out, c->att, c->q, c->ldq, c->k, c->ldk, c->v, c->ldv, c->kvs, c->rows,
                      c->B, c->T, c->Tk, c->C, c->H);
    return dot_R(c->out, c->R, (int64_t)c->B * c->T * c->C);
}

static attn_row row_of(int lo1, int hi1, int lo2, int hi2) {
    attn_row r = {lo1, hi1, lo2, hi2};
    return r;
}

static int row_allows(const attn_row *r, int j) {
    return (j >= r->lo1 && j < r->hi1) || (j >= r->lo2 && j < r->hi2);
}

/* kv: 0 packed qkv (Tk == T), 1 separate q and K/V cache per batch, 2 K/V shared by the batch */
static void attn_setup(attn_ctx *c, const char *name, int B, int T, int Tk, int C, int H, int kv) {
    memset(c, 0, sizeof *c);
    c->name = name, c->B = B, c->T = T, c->Tk = Tk, c->C = C, c->H = H;
    if (kv == 0) {
        c->nq = (int64_t)B * T * 3 * C;
        c->qbuf = buf_rand(c->nq, -1.5f, 1.5f);
        c->q = c->qbuf, c->k = c->qbuf + C, c->v = c->qbuf + 2 * C;
        c->ldq = c->ldk = c->ldv = 3 * C;
        c->kvs = (int64_t)T * 3 * C;
    } else {
        int nb = kv == 1 ? B : 1;
        c->nq = (int64_t)B * T * C;
        c->nkv = (int64_t)nb * Tk * 2 * C;
        c->qbuf = buf_rand(c->nq, -1.5f, 1.5f);
        c->kvbuf = buf_rand(c->nkv, -1.5f, 1.5f);
        /* K and V interleaved per key row: (nb, Tk, 2C) */
        c->q = c->qbuf, c->k = c->kvbuf, c->v = c->kvbuf + C;
        c->ldq = C, c->ldk = c->ldv = 2 * C;
        c->kvs = kv == 1 ? (int64_t)Tk * 2 * C : 0;
    }
    c->rows = calloc((size_t)B * T, sizeof(attn_row));
    c->out = buf_rand((int64_t)B * T * C, 0, 0);
    c->att = buf_rand((int64_t)B * H * T * Tk, 0, 0);
    c->R = buf_rand((int64_t)B * T * C, -1, 1);
}

static void attn_free(attn_ctx *c) {
    free(c->qbuf), free(c->kvbuf), free(c->rows), free(c->out), free(c->att), free(c->R);
}

static void attn_check(attn_ctx *c) {
    int B = c->B, T = c->T, Tk = c->Tk, C = c->C, H = c->H, hd = C / H;
    int64_t nout = (int64_t)B * T * C, natt = (int64_t)B * H * T * Tk;
    /* forward vs the double reference */
    attn_loss(c);
    float *out_ref = buf_rand(nout, 0, 0), *att_ref = buf_rand(natt, 0, 0);
    attention_forward_naive(out_ref, att_ref, c->q, c->ldq, c->k, c->ldk, c->v, c->ldv, c->kvs,
                            c->rows, B, T, Tk, C, H);
    double eo = max_abs_diff(out_ref, c->out, nout), ea = max_abs_diff(att_ref, c->att, natt);
    if (eo > 1e-5 || ea > 1e-5) fprintf(stderr, "%s: out %g att %g\n", c->name, eo, ea);
    CHECK(eo <= 1e-5);
    CHECK(ea <= 1e-5);
    /* probabilities: rows sum to 1, exactly 0 on blocked keys unless fully blocked */
    int zeros_ok = 1;
    double esum = 0.0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const attn_row *r = &c->rows[b * T + t];
                int blocked = !(r->lo1 < r->hi1) && !(r->lo2 < r->hi2);
                const float *p = c->att + (((size_t)b * H + h) * T + t) * Tk;
                double s = 0.0;
                for (int j = 0; j < Tk; j++) {
                    s += p[j];
                    if (!blocked && !row_allows(r, j)) zeros_ok &= p[j] == 0.0f;
                    if (blocked) zeros_ok &= p[j] == 1.0f / (float)Tk;
                }
                esum = fabs(s - 1.0) > esum ? fabs(s - 1.0) : esum;
            }
    CHECK(zeros_ok);
    CHECK(esum < 1e-5);
    /* a fully blocked row outputs the mean of all Tk value rows */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const attn_row *r = &c->rows[b * T + t];
            if (r->lo1 < r->hi1 || r->lo2 < r->hi2) continue;
            for (int i = 0; i < C; i++) {
                double m = 0.0;
                for (int j = 0; j < Tk; j++)
                    m += c->v[b * c->kvs + (int64_t)j * c->ldv + i];
                CHECK_NEAR(c->out[(b * T + t) * C + i], m / Tk, 1e-5);
            }
        }
    /* backward: gradients into copies of the input buffers pre-filled with a random prior */
    float *pq = buf_rand(c->nq, -1, 1), *pkv = buf_rand(c->nkv, -1, 1);
    float *dq = buf_copy(pq, c->nq), *dkv = buf_copy(pkv, c->nkv);
    float *dqv = dq, *dkp, *dvp;
    if (c->kvbuf)
        dkp = dkv, dvp = dkv + C;
    else
        dkp = dq + C, dvp = dq + 2 * C;
    attention_backward(dqv, dkp, dvp, c->R, c->att, c->q, c->ldq, c->k, c->ldk, c->v, c->ldv,
                       c->kvs, c->rows, B, T, Tk, C, H);
    char what[128];
    snprintf(what, sizeof what, "attention %s (q%s)", c->name, c->kvbuf ? "" : "kv");
    check_fd(what, c->qbuf, c->nq, dq, pq, attn_loss, c);
    if (c->kvbuf) {
        snprintf(what, sizeof what, "attention %s (kv)", c->name);
        check_fd(what, c->kvbuf, c->nkv, dkv, pkv, attn_loss, c);
    }
    /* overwrite mode (accumulate 0): every head column of dq/dk/dv is written (NaN-filled
     * buffers come back finite) and equals the accumulated result minus its prior */
    {
        float *oq = buf_rand(c->nq, 0, 0), *okv = c->kvbuf ? buf_rand(c->nkv, 0, 0) : NULL;
        for (int64_t i = 0; i < c->nq; i++)
            oq[i] = NAN;
        for (int64_t i = 0; okv && i < c->nkv; i++)
            okv[i] = NAN;
        float *okp = okv ? okv : oq + C, *ovp = okv ? okv + C : oq + 2 * C;
        const float *ppk = c->kvbuf ? pkv : pq + C, *ppv = c->kvbuf ? pkv + C : pq + 2 * C;
        attention_backward_dropout(oq, okp, ovp, c->R, c->att, c->q, c->ldq, c->k, c->ldk, c->v,
                                   c->ldv, c->kvs, c->rows, B, T, Tk, C, H, NULL, 0.0f, 0);
        double ew = 0.0;
        int nan_left = 0;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++)
                for (int i = 0; i < C; i++) {
                    int64_t o = (int64_t)(b * T + t) * c->ldq + i;
                    ew = fmax(ew, fabs(oq[o] - ((double)dq[o] - pq[o])));
                    nan_left |= oq[o] != oq[o];
                }
            for (int j = 0; j < Tk; j++)
                for (int i = 0; i < C; i++) {
                    int64_t ok = b * c->kvs + (int64_t)j * c->ldk + i;
                    int64_t ov = b * c->kvs + (int64_t)j * c->ldv + i;
                    nan_left |= okp[ok] != okp[ok] || ovp[ov] != ovp[ov];
                    ew = fmax(ew, fabs(okp[ok] - ((double)dkp[ok] - ppk[ok])));
                    ew = fmax(ew, fabs(ovp[ov] - ((double)dvp[ov] - ppv[ov])));
                }
        }
        CHECK(ew < 1e-5);
        CHECK(!nan_left);
        free(oq), free(okv);
    }
    /* fully blocked rows: exactly no gradient to their query */
    int dq_zero = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const attn_row *r = &c->rows[b * T + t];
            if (r->lo1 < r->hi1 || r->lo2 < r->hi2) continue;
            for (int i = 0; i < hd * H; i++) {
                int64_t o = (int64_t)(b * T + t) * c->ldq + i;
                dq_zero &= dq[o] == pq[o];
            }
        }
    CHECK(dq_zero);
    free(out_ref), free(att_ref), free(pq), free(pkv), free(dq), free(dkv);
}

static void test_attention(void) {
    attn_ctx c;
    /* causal, packed qkv */
    attn_setup(&c, "causal", 2, 5, 5, 8, 2, 0);
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 5; t++)
            c.rows[b * 5 + t] = row_of(0, t + 1, 0, 0);
    attn_check(&c);
    attn_free(&c);

    /* spec §2.1: block w=4, L=12, step 5 (settled block 0 sees itself, active block 1 sees 0 and
     * itself, block 2 worthless = fully blocked); batch 1: the simple-annealing example (L=8 grid,
     * n_s = 2, active 2..5, rows 6.. blocked), padded to 12 */
    attn_setup(&c, "block-causal", 2, 12, 12, 8, 2, 0);
    for (int t = 0; t < 12; t++) {
        c.rows[t] = t < 4 ? row_of(0, 4, 0, 0) : t < 8 ? row_of(0, 8, 0, 0) : row_of(0, 0, 0, 0);
        c.rows[12 + t] = t < 2   ? row_of(0, 2, 0, 0)
                         : t < 6 ? row_of(0, 6, 0, 0)
                                 : row_of(0, 0, 0, 0);
    }
    attn_check(&c);
    attn_free(&c);

    /* spec §2.5 efficient-training mask, L=4, w=2: clean half block-causal; noisy bucket k sees
     * clean [0, k·w) and itself -> two ranges, the first empty for k = 0 */
    attn_setup(&c, "two-range", 1, 8, 8, 16, 2, 0);
    for (int t = 0; t < 4; t++)
        c.rows[t] = row_of(0, (t / 2 + 1) * 2, 0, 0);
    for (int t = 4; t < 8; t++) {
        int k = (t - 4) / 2;
        c.rows[t] = row_of(0, 2 * k, 4 + 2 * k, 4 + 2 * k + 2);
    }
    attn_check(&c);
    attn_free(&c);

    /* KV cache: 4 cached keys then the 3 active queries' own keys (Tk = 7 > T = 3); batch 1 has
     * disjoint ranges, overlapping ranges and a blocked row */
    attn_setup(&c, "kv-cache", 2, 3, 7, 8, 2, 1);
    for (int t = 0; t < 3; t++)
        c.rows[t] = row_of(0, 4, 4, 4 + t + 1);
    c.rows[3] = row_of(0, 2, 4, 7);
    c.rows[4] = row_of(3, 6, 1, 5);
    c.rows[5] = row_of(2, 2, 7, 3);
    attn_check(&c);
    attn_free(&c);

    /* one K/V shared by the batch (kv_bstride 0): dk/dv collect from both batch rows */
    attn_setup(&c, "shared-kv", 2, 3, 4, 8, 2, 2);
    for (int t = 0; t < 6; t++)
        c.rows[t] = row_of(0, 1 + t % 4, 0, 0);
    attn_check(&c);
    attn_free(&c);

    /* single head, single batch row (no parallel region) */
    attn_setup(&c, "single-head", 1, 4, 4, 4, 1, 0);
    for (int t = 0; t < 4; t++)
        c.rows[t] = row_of(0, 4, 0, 0);
    attn_check(&c);
    attn_free(&c);
}

/* ---- cross-entropy --------------------------------------------------------------------------- */

typedef struct ce_ctx {
    float *logits, *loss, *dloss;
    const int32_t *target;
    int N, V;
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c = p;
    crossentropy_forward(c->loss, c->logits, c->target, c->N, c->V);
    return dot_R(c->loss, c->dloss, c->N);
}

static double ce_reference(const float *x, int V, int target) {
    double m = -INFINITY, s = 0.0;
    for (int j = 0; j < V; j++)
        m = x[j] > m ? x[j] : m;
    for (int j = 0; j < V; j++)
        s += exp(x[j] - m);
    return log(s) + m - x[target];
}

static void test_crossentropy(void) {
    enum { N = 5, V = 9 };
    const int32_t target[N] = {3, -1, 0, 8, 3};
    ce_ctx c = {buf_rand(N * V, -4, 4), buf_rand(N, 0, 0), buf_rand(N, 0.1f, 2.0f), target, N, V};
    ce_loss(&c);
    for (int n = 0; n < N; n++)
        CHECK_NEAR(c.loss[n], target[n] < 0 ? 0.0 : ce_reference(c.logits + n * V, V, target[n]),
                   1e-5);
    float *prior = buf_rand(N * V, -1, 1), *d = buf_copy(prior, N * V);
    crossentropy_backward(d, c.logits, target, c.dloss, N, V);
    check_fd("crossentropy", c.logits, N * V, d, prior, ce_loss, &c);
    int skipped = 1;
    for (int j = 0; j < V; j++)
        skipped &= d[V + j] == prior[V + j];
    CHECK(skipped);
    /* dloss NULL = weight 1: the row's gradient sums to 0 and is p - 1 at the target */
    memset(d, 0, sizeof(float) * N * V);
    crossentropy_backward(d, c.logits, target, NULL, N, V);
    double s = 0.0;
    for (int j = 0; j < V; j++)
        s += d[j];
    CHECK_NEAR(s, 0.0, 1e-6);
    CHECK_NEAR(d[3], exp(-c.loss[0]) - 1.0, 1e-6);
    free(c.logits), free(c.loss), free(c.dloss), free(prior), free(d);

    /* vocabulary-size rows on the threaded path */
    int N2 = 4, V2 = 50258;
    int32_t t2[4] = {0, 50257, 12345, -1};
    float *lg = buf_rand((int64_t)N2 * V2, -8, 8), *l2 = buf_rand(N2, 0, 0);
    lg[12345 + 2 * V2] = 30.0f; /* a confident row */
    crossentropy_forward(l2, lg, t2, N2, V2);
    for (int n = 0; n < 3; n++)
        CHECK_NEAR(l2[n], ce_reference(lg + (size_t)n * V2, V2, t2[n]), 1e-4);
    CHECK_NEAR(l2[3], 0.0, 0);
    free(lg), free(l2);
}

/* The few-row GEMV splits rows between threads by their measured rates, so the split changes from
 * call to call: outputs must not (bit-identical across calls and against one thread), and equal the
 * naive product. */
static void test_linear_gemv_split(void) {
    int N = 3, C = 300, OC = 1001; /* C not a multiple of 32: the tail path too */
    float *x = buf_rand(N * C, -1, 1), *w = buf_rand(OC * C, -1, 1), *bias = buf_rand(OC, -1, 1);
    float *first = buf_rand(N * OC, 0, 0), *out = buf_rand(N * OC, 0, 0);
    float *ref = buf_rand(N * OC, 0, 0);
    int threads = blas_get_threads();
    blas_set_threads(2); /* ctest runs with OMP_NUM_THREADS=1: split for real */
    linear_forward(first, x, w, bias, N, C, OC);
    linear_forward_naive(ref, x, w, bias, N, C, OC);
    CHECK(max_abs_diff(first, ref, N * OC) < 1e-4);
    int same = 1;
    for (int r = 0; r < 20; r++) {
        linear_forward(out, x, w, bias, N, C, OC);
        same &= memcmp(out, first, sizeof(float) * N * OC) == 0;
    }
    blas_set_threads(1);
    linear_forward(out, x, w, bias, N, C, OC);
    same &= memcmp(out, first, sizeof(float) * N * OC) == 0;
    blas_set_threads(threads);
    CHECK(same);
    free(x), free(w), free(bias), free(first), free(out), free(ref);
}

int main(void) {
    rng_init(&g_rng, 20240607);
    test_linear(1);
    test_linear(0);
    test_linear_sanity();
    test_linear_gemv_split();
    test_embedding(0);
    test_embedding(1);
    test_embedding_large();
    test_layernorm();
    test_modulate_residual();
    test_activation_fd(0);
    test_activation_fd(1);
    test_activation_accuracy();
    test_timestep();
    const int32_t pos_dense[6] = {0, 1, 2, 0, 1, 2};      /* per-position table */
    const int32_t pos_sparse[6] = {0, 1000, 5, 3, 77, 2}; /* per-row table */
    test_rope(pos_dense, 6);
    test_rope(pos_sparse, 6);
    test_attention();
    test_crossentropy();
    return check_report("test_layers");
}
