/* The run-time kernel variants (base/cpu.h): every variant this build and CPU can run is forced in
 * turn and the dispatched kernels of nn/layers.c (GELU, SiLU, masked softmax inside attention,
 * cross-entropy, the few-row GEMV, the column-sliced backward passes, the rotary rotation) are
 * checked on the same inputs against float64 references and
 * against the generic variant (the build's baseline code); sizes cover the parallel split and the
 * vector tails. Also: HDLM_KERNELS picks a variant, an unknown or unsupported one is refused with
 * the list of those that run here. */
#include "base/cpu.h"
#include "base/rng.h"
#include "check.h"
#include "nn/layers.h"

#include <math.h>
#include <stdlib.h>

static float *randv(rng *r, size_t n, double scale) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * (2.0 * rng_uniform(r) - 1.0));
    return x;
}

/* max |a - b| / (abs + rel·|b|) over n values: <= 1 means within tolerance */
static double worst(const float *a, const double *b, size_t n, double abs_tol, double rel_tol) {
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (abs_tol + rel_tol * fabs(b[i]));
        if (!(e <= w)) w = e; /* NaN counts as worst */
    }
    return w;
}

static double worst_f(const float *a, const float *b, size_t n, double abs_tol, double rel_tol) {
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (abs_tol + rel_tol * fabs((double)b[i]));
        if (!(e <= w)) w = e;
    }
    return w;
}

static double gelu_ref(double x) {
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
static double gelu_grad_ref(double x) {
    double u = 0.7978845608028654 * (x + 0.044715 * x * x * x), t = tanh(u);
    return 0.5 * (1.0 + t) +
           0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}
static double silu_ref(double x) {
    return x / (1.0 + exp(-x));
}
static double silu_grad_ref(double x) {
    double s = 1.0 / (1.0 + exp(-x));
    return s + x * s * (1.0 - s);
}

/* one variant's outputs, kept to compare with the generic variant's */
typedef struct outputs {
    float *gelu, *dgelu, *dgelu_inplace, *silu, *dsilu, *att_out, *att, *loss, *dlogits, *gemv;
    float *grads; /* modulate/residual backward, column sums, rotary: (N_ROWS, RC) each */
} outputs;

enum {
    N_ELEM = 70001,
    N_SMALL = 37,
    B = 2,
    T = 19,
    C = 24,
    H = 3,
    NX = 5,
    V = 1031,
    GN = 3,
    GC = 200,
    GOC = 700,
    N_ROWS = 300,
    RC = 131,
    RH = 2,
    RHD = 64
};

static void run_variant(outputs *o, const char *name) {
    rng r;
    rng_init(&r, 42); /* the same inputs for every variant */
    size_t n = N_ELEM;
    /* element-wise: values in [-12, 12] reach both clamps of the sigmoid form */
    float *x = randv(&r, n, 12.0), *dout = randv(&r, n, 1.0);
    o->gelu = malloc(n * sizeof(float));
    o->dgelu = calloc(n, sizeof(float));
    o->dgelu_inplace = malloc(n * sizeof(float));
    o->silu = malloc(n * sizeof(float));
    o->dsilu = calloc(n, sizeof(float));
    gelu_forward(o->gelu, x, (int64_t)n);
    gelu_forward(o->gelu, x, N_SMALL); /* one thread, tails only: same values again */
    gelu_backward(o->dgelu, x, dout, (int64_t)n);
    for (size_t i = 0; i < n; i++)
        o->dgelu_inplace[i] = dout[i];
    gelu_backward_inplace(o->dgelu_inplace, x, (int64_t)n);
    silu_forward(o->silu, x, (int64_t)n);
    silu_backward(o->dsilu, x, dout, (int64_t)n);
    double *ref = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        ref[i] = gelu_ref(x[i]);
    double w = worst(o->gelu, ref, n, 2e-6, 2e-6);
    if (w > 1) fprintf(stderr, "%s: gelu off by %.3g tolerances\n", name, w);
    CHECK(w <= 1);
    for (size_t i = 0; i < n; i++)
        ref[i] = gelu_grad_ref(x[i]) * dout[i];
    w = worst(o->dgelu, ref, n, 2e-6, 2e-5);
    if (w > 1) fprintf(stderr, "%s: gelu backward off by %.3g tolerances\n", name, w);
    CHECK(w <= 1);
    size_t differ = 0; /* the same product as gelu_backward into zeros: equal bits */
    for (size_t i = 0; i < n; i++)
        differ += o->dgelu_inplace[i] != o->dgelu[i];
    CHECK_EQ(differ, 0);
    for (size_t i = 0; i < n; i++)
        ref[i] = silu_ref(x[i]);
    w = worst(o->silu, ref, n, 2e-6, 2e-6);
    if (w > 1) fprintf(stderr, "%s: silu off by %.3g tolerances\n", name, w);
    CHECK(w <= 1);
    for (size_t i = 0; i < n; i++)
        ref[i] = silu_grad_ref(x[i]) * dout[i];
    w = worst(o->dsilu, ref, n, 2e-6, 2e-5);
    if (w > 1) fprintf(stderr, "%s: silu backward off by %.3g tolerances\n", name, w);
    CHECK(w <= 1);
    free(ref);
    free(x);
    free(dout);

    /* attention (the masked softmax rows) against the naive form: causal rows, two-segment
     * rows, and a fully blocked row (uniform) */
    float *q = randv(&r, (size_t)B * T * C, 2.0), *k = randv(&r, (size_t)B * T * C, 2.0),
          *v = randv(&r, (size_t)B * T * C, 1.0);
    attn_row rows[B * T];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            attn_row *a = &rows[b * T + t];
            if (b == 0)
                *a = (attn_row){0, t + 1, 0, 0};
            else if (t == 5)
                *a = (attn_row){0, 0, 0, 0};
            else
                *a = (attn_row){0, t / 2 + 1, T - 3, T};
        }
    o->att_out = malloc((size_t)B * T * C * sizeof(float));
    o->att = malloc((size_t)B * H * T * T * sizeof(float));
    float *nout = malloc((size_t)B * T * C * sizeof(float)),
          *natt = malloc((size_t)B * H * T * T * sizeof(float));
    attention_forward(o->att_out, o->att, q, C, k, C, v, C, (int64_t)T * C, rows, B, T, T, C, H);
    attention_forward_naive(nout, natt, q, C, k, C, v, C, (int64_t)T * C, rows, B, T, T, C, H);
    w = worst_f(o->att, natt, (size_t)B * H * T * T, 1e-6, 1e-5);
    if (w > 1) fprintf(stderr, "%s: attention probabilities off by %.3g tolerances\n", name, w);
    CHECK(w <= 1);
    CHECK(worst_f(o->att_out, nout, (size_t)B * T * C, 1e-5, 1e-5) <= 1);
    free(q);
    free(k);
    free(v);
    free(nout);
    free(natt);

    /* cross-entropy over V logits (the row kernels) against float64 */
    float *logits = randv(&r, (size_t)NX * V, 8.0);
    int32_t target[NX] = {0, 17, -1, V - 1, 500};
    o->loss = malloc(NX * sizeof(float));
    o->dlogits = calloc((size_t)NX * V, sizeof(float));
    crossentropy_forward(o->loss, logits, target, NX, V);
    crossentropy_backward(o->dlogits, logits, target, NULL, NX, V);
    for (int i = 0; i < NX; i++) {
        const float *xi = logits + (size_t)i * V;
        double m = -INFINITY, s = 0.0;
        for (int j = 0; j < V; j++)
            m = xi[j] > m ? xi[j] : m;
        for (int j = 0; j < V; j++)
            s += exp(xi[j] - m);
        double want = target[i] < 0 ? 0.0 : log(s) + m - xi[target[i]];
        CHECK_NEAR(o->loss[i], want, 1e-5 * (1.0 + fabs(want)));
        double wd = 0.0;
        for (int j = 0; j < V; j++) {
            double g = target[i] < 0 ? 0.0 : exp(xi[j] - m) / s - (j == target[i] ? 1.0 : 0.0);
            double e = fabs(o->dlogits[(size_t)i * V + j] - g);
            wd = e > wd ? e : wd;
        }
        CHECK(wd <= 1e-6);
        if (target[i] < 0) continue;
        /* the row form the plugin host offers (host->softmax_ce): double result, weight g */
        const double gw = 0.37;
        float *d = malloc((size_t)V * sizeof(float));
        double ce = crossentropy_row(d, xi, V, target[i], gw);
        CHECK_NEAR(ce, want, 1e-13 * (1.0 + fabs(want))); /* double exps: near libm's */
        CHECK_NEAR(crossentropy_row(NULL, xi, V, target[i], gw), ce, 0.0); /* same sum */
        wd = 0.0;
        for (int j = 0; j < V; j++) {
            double g = gw * (exp(xi[j] - m) / s - (j == target[i] ? 1.0 : 0.0));
            double e = fabs(d[j] - g) / (1e-9 + 1e-6 * fabs(g));
            wd = e > wd ? e : wd;
        }
        CHECK(wd <= 1);
        free(d);
    }
    /* one logit, and logits far below the largest (their exps clamp at e^-708, which leaves the
     * sum; the CE of such a class still comes from its own logit) */
    float one = 3.0f, far[3] = {0.0f, -200.0f, -1e30f}, d1, d3[3];
    CHECK_NEAR(crossentropy_row(&d1, &one, 1, 0, 1.0), 0.0, 0.0);
    CHECK_NEAR(d1, 0.0, 0.0);
    CHECK_NEAR(crossentropy_row(d3, far, 3, 0, 1.0), 0.0, 1e-30);
    CHECK_NEAR(crossentropy_row(d3, far, 3, 1, 1.0), 200.0, 1e-9); /* from the logit itself */
    CHECK_NEAR(d3[1], -1.0, 1e-7);
    free(logits);

    /* the GEMV (linear with at most 8 rows), with a width that is not a multiple of 32 */
    float *in = randv(&r, (size_t)GN * GC, 1.0), *wt = randv(&r, (size_t)GOC * GC, 0.1),
          *bias = randv(&r, GOC, 0.5);
    float *nv = malloc((size_t)GN * GOC * sizeof(float));
    o->gemv = malloc((size_t)GN * GOC * sizeof(float));
    linear_forward(o->gemv, in, wt, bias, GN, GC, GOC);
    linear_forward_naive(nv, in, wt, bias, GN, GC, GOC);
    w = worst_f(o->gemv, nv, (size_t)GN * GOC, 1e-5, 1e-5);
    if (w > 1) fprintf(stderr, "%s: gemv off by %.3g tolerances\n", name, w);
    CHECK(w <= 1);
    free(in);
    free(wt);
    free(bias);
    free(nv);

    /* the column-sliced backward passes (modulate, residual), the bias gradient's column sums
     * and the rotary rotation, against float64 loops */
    size_t m = (size_t)N_ROWS * RC;
    float *g = randv(&r, m, 1.0), *xin = randv(&r, m, 1.0), *sc = randv(&r, m, 0.5);
    o->grads = calloc(6 * m, sizeof(float));
    float *dinp = o->grads, *dshift = dinp + m, *dscale = dshift + m, *dres = dscale + m,
          *dx = dres + m, *rot = dx + m;
    modulate_backward(dinp, dshift, dscale, g, xin, sc, RC, NULL, N_ROWS, RC);
    residual_backward(dres, dx, NULL, g, xin, sc, RC, NULL, N_ROWS, RC);
    double wm = 0.0;
    for (size_t i = 0; i < m; i++) {
        double e1 = fabs(dinp[i] - (double)g[i] * (1.0 + sc[i]));
        double e2 = fabs(dscale[i] - (double)g[i] * xin[i]);
        double e3 =
            fabs(dshift[i] - g[i]) + fabs(dres[i] - g[i]) + fabs(dx[i] - (double)sc[i] * g[i]);
        double e = e1 > e2 ? e1 : e2;
        e = e > e3 ? e : e3;
        wm = e > wm ? e : wm;
    }
    CHECK(wm <= 1e-6);
    float *dbias = calloc(RC, sizeof(float));
    linear_backward(NULL, NULL, dbias, g, xin, sc, N_ROWS, RC, RC);
    double wb = 0.0;
    for (int c = 0; c < RC; c++) {
        double sum = 0.0;
        for (int n2 = 0; n2 < N_ROWS; n2++)
            sum += g[(size_t)n2 * RC + c];
        double e = fabs(dbias[c] - sum);
        wb = e > wb ? e : wb;
    }
    CHECK(wb <= 1e-4);
    free(dbias);
    /* rotary: rows of RH heads x RHD; forward then backward is the identity */
    int32_t pos[N_ROWS];
    for (int i = 0; i < N_ROWS; i++)
        pos[i] = (i * 7) % 97;
    for (size_t i = 0; i < (size_t)N_ROWS * RH * RHD; i++)
        rot[i] = xin[i % m];
    rope_forward(rot, RH * RHD, pos, N_ROWS, RH, RHD);
    float *back = malloc((size_t)N_ROWS * RH * RHD * sizeof(float));
    for (size_t i = 0; i < (size_t)N_ROWS * RH * RHD; i++)
        back[i] = rot[i];
    rope_backward(back, RH * RHD, pos, N_ROWS, RH, RHD);
    double wr = 0.0;
    for (size_t i = 0; i < (size_t)N_ROWS * RH * RHD; i++) {
        double e = fabs(back[i] - xin[i % m]);
        wr = e > wr ? e : wr;
    }
    CHECK(wr <= 1e-5);
    free(back);
    free(g);
    free(xin);
    free(sc);
}

static void free_outputs(outputs *o) {
    free(o->gelu), free(o->dgelu), free(o->dgelu_inplace), free(o->silu), free(o->dsilu);
    free(o->att_out), free(o->att), free(o->loss), free(o->dlogits), free(o->gemv);
    free(o->grads);
}

/* a variant against the generic one: the same C, another instruction set (FMA, wider vectors,
 * other summation order in reductions), so equal up to rounding */
static void compare(const outputs *a, const outputs *g) {
    CHECK(worst_f(a->gelu, g->gelu, N_ELEM, 1e-6, 1e-6) <= 1);
    CHECK(worst_f(a->dgelu, g->dgelu, N_ELEM, 1e-6, 1e-5) <= 1);
    CHECK(worst_f(a->silu, g->silu, N_ELEM, 1e-6, 1e-6) <= 1);
    CHECK(worst_f(a->dsilu, g->dsilu, N_ELEM, 1e-6, 1e-5) <= 1);
    CHECK(worst_f(a->att, g->att, (size_t)B * H * T * T, 1e-6, 1e-5) <= 1);
    CHECK(worst_f(a->att_out, g->att_out, (size_t)B * T * C, 1e-6, 1e-5) <= 1);
    CHECK(worst_f(a->loss, g->loss, NX, 1e-6, 1e-5) <= 1);
    CHECK(worst_f(a->dlogits, g->dlogits, (size_t)NX * V, 1e-7, 1e-5) <= 1);
    CHECK(worst_f(a->gemv, g->gemv, (size_t)GN * GOC, 1e-6, 1e-5) <= 1);
    CHECK(worst_f(a->grads, g->grads, (size_t)6 * N_ROWS * RC, 1e-6, 1e-5) <= 1);
}

int main(void) {
    error e = {0};
    outputs out[CPU_N_VARIANTS] = {0};
    int ran = 0;
    for (int v = 0; v < CPU_N_VARIANTS; v++) {
        if (!cpu_variant_supported((cpu_variant)v)) {
            CHECK_EQ(cpu_variant_force((cpu_variant)v, &e), HDLM_EINVAL);
            CHECK_CONTAINS(e.msg, "cannot run here");
            printf("test_kernels: %s not run (this build or CPU lacks it)\n",
                   cpu_variant_name((cpu_variant)v));
            continue;
        }
        CHECK_EQ(cpu_variant_force((cpu_variant)v, &e), HDLM_OK);
        CHECK_EQ(cpu_variant_active(), v);
        run_variant(&out[v], cpu_variant_name((cpu_variant)v));
        if (v != CPU_GENERIC) compare(&out[v], &out[CPU_GENERIC]);
        printf("test_kernels: %s checked\n", cpu_variant_name((cpu_variant)v));
        ran++;
    }
    CHECK(ran >= 1);
#if HDLM_DISPATCH
    /* an x86-64 build without HDLM_NATIVE has the three variants; a CPU from the last decade
     * runs AVX2 */
    CHECK(ran >= 2);
#endif
    for (int v = 0; v < CPU_N_VARIANTS; v++)
        if (out[v].gelu) free_outputs(&out[v]);

    /* HDLM_KERNELS */
    /* the one variant of an HDLM_NATIVE build is named "native" */
    const char *first = cpu_variant_name(CPU_GENERIC);
    setenv("HDLM_KERNELS", first, 1);
    CHECK_EQ(cpu_variant_from_env(&e), HDLM_OK);
    CHECK_EQ(cpu_variant_active(), CPU_GENERIC);
    setenv("HDLM_KERNELS", "sse9", 1);
    CHECK_EQ(cpu_variant_from_env(&e), HDLM_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "HDLM_KERNELS=sse9: unknown kernel variant, expected one of: %s",
             first);
    CHECK_CONTAINS(e.msg, want);
    CHECK_EQ(cpu_variant_force(CPU_N_VARIANTS, &e), HDLM_EINVAL);
    unsetenv("HDLM_KERNELS");
    CHECK_EQ(cpu_variant_from_env(&e), HDLM_OK);
    cpu_variant best = CPU_GENERIC;
    for (int v = 0; v < CPU_N_VARIANTS; v++)
        if (cpu_variant_supported((cpu_variant)v)) best = (cpu_variant)v;
    CHECK_EQ(cpu_variant_active(), best);
    return check_report("test_kernels");
}
