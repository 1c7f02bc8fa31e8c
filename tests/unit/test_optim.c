/* Tests of the optimizer module: AdamW steps against a float64 reference written out here
 * (bias correction, decoupled weight decay only where the decay table says so), the learning-rate
 * schedules at exact steps, global-norm clipping (above, at and below the threshold), the EMA
 * with its warm-up rule, the decay table built from a real model, and a gradient norm whose bits
 * do not depend on the thread count. The references are independent re-derivations of the
 * update rules, not calls into optim.c. */
#include "check.h"
#include "nn/model.h"
#include "nn/optim.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static optim_config cfg_default(void) {
    optim_config c;
    memset(&c, 0, sizeof c);
    c.lr = 1e-2;
    c.min_lr = 1e-3;
    c.warmup = 0;
    c.steps = 100;
    c.schedule = LR_CONSTANT;
    c.beta1 = 0.9;
    c.beta2 = 0.95;
    c.eps = 1e-8;
    c.weight_decay = 0.1;
    c.clip = 0;
    c.ema = 0;
    return c;
}

/* An optimizer over n plain floats (no model): the state a model would get from optim_init. */
static void optim_manual(optim *o, const optim_config *c, size_t n, const uint8_t *decay,
                         const float *params) {
    memset(o, 0, sizeof *o);
    o->cfg = *c;
    o->n = n;
    o->m = calloc(n, sizeof(float));
    o->v = calloc(n, sizeof(float));
    o->decay = malloc(n);
    memcpy(o->decay, decay, n);
    if (c->ema > 0) {
        o->ema = malloc(n * sizeof(float));
        memcpy(o->ema, params, n * sizeof(float));
    }
    HDLM_ASSERT(o->m && o->v && o->decay && (c->ema <= 0 || o->ema));
}

static void test_schedule_names(void) {
    CHECK_EQ(lr_schedule_from_name("cosine"), LR_COSINE);
    CHECK_EQ(lr_schedule_from_name("linear"), LR_LINEAR);
    CHECK_EQ(lr_schedule_from_name("constant"), LR_CONSTANT);
    CHECK_EQ(lr_schedule_from_name("Cosine"), -1);
    CHECK_EQ(lr_schedule_from_name(""), -1);
    CHECK_STR(lr_schedule_name(LR_COSINE), "cosine");
    CHECK_STR(lr_schedule_name(LR_LINEAR), "linear");
    CHECK_STR(lr_schedule_name(LR_CONSTANT), "constant");
}

static void test_schedules(void) {
    optim_config c = cfg_default();
    c.lr = 1e-3;
    c.min_lr = 1e-4;
    c.warmup = 10;
    c.steps = 110; /* 100 steps of decay after the warm-up */
    const double tol = 1e-15;

    for (int s = 0; s < 3; s++) {
        c.schedule = s;
        /* linear warm-up: (t+1)/warmup of the peak, reaching the peak on the last warm-up step */
        CHECK_NEAR(optim_lr(&c, 0), 1e-4, tol);
        CHECK_NEAR(optim_lr(&c, 4), 5e-4, tol);
        CHECK_NEAR(optim_lr(&c, 9), 1e-3, tol);
        CHECK_NEAR(optim_lr(&c, 10), 1e-3, tol); /* decay starts from the peak */
    }

    c.schedule = LR_COSINE;
    /* p = (t - warmup) / (steps - warmup); lr = min + (lr - min) (1 + cos(pi p)) / 2 */
    CHECK_NEAR(optim_lr(&c, 35), 1e-4 + 4.5e-4 * (1.0 + cos(M_PI * 0.25)), tol);
    CHECK_NEAR(optim_lr(&c, 60), 5.5e-4, tol);
    CHECK_NEAR(optim_lr(&c, 85), 1e-4 + 4.5e-4 * (1.0 + cos(M_PI * 0.75)), tol);
    CHECK_NEAR(optim_lr(&c, 110), 1e-4, tol);  /* the end of the schedule is min_lr */
    CHECK_NEAR(optim_lr(&c, 5000), 1e-4, tol); /* and stays there past the end */
    int mono = 1;
    for (int64_t t = 10; t < 200; t++)
        mono &= optim_lr(&c, t + 1) <= optim_lr(&c, t);
    CHECK(mono);

    c.schedule = LR_LINEAR;
    CHECK_NEAR(optim_lr(&c, 35), 1e-3 - 9e-4 * 0.25, tol);
    CHECK_NEAR(optim_lr(&c, 60), 5.5e-4, tol);
    CHECK_NEAR(optim_lr(&c, 109), 1e-3 - 9e-4 * 0.99, tol);
    CHECK_NEAR(optim_lr(&c, 110), 1e-4, tol);
    CHECK_NEAR(optim_lr(&c, 5000), 1e-4, tol);

    c.schedule = LR_CONSTANT;
    CHECK_NEAR(optim_lr(&c, 60), 1e-3, tol);
    CHECK_NEAR(optim_lr(&c, 109), 1e-3, tol);
    CHECK_NEAR(optim_lr(&c, 1000000), 1e-3, tol);

    /* no warm-up: the first step runs at the peak */
    c.warmup = 0;
    c.steps = 100;
    c.schedule = LR_COSINE;
    CHECK(optim_lr(&c, 0) == 1e-3);
    CHECK_NEAR(optim_lr(&c, 50), 5.5e-4, tol);
    CHECK_NEAR(optim_lr(&c, 100), 1e-4, tol);
    c.schedule = LR_LINEAR;
    CHECK(optim_lr(&c, 0) == 1e-3);
    CHECK_NEAR(optim_lr(&c, 100), 1e-4, tol);

    /* a warm-up as long as the run: ramp, then min_lr (no span left to decay over) */
    c.warmup = 100;
    c.schedule = LR_COSINE;
    CHECK_NEAR(optim_lr(&c, 99), 1e-3, tol);
    CHECK_NEAR(optim_lr(&c, 100), 1e-4, tol);
}

static void test_grad_norm(void) {
    float g[5] = {3, 4, 0, 0, 0};
    CHECK(optim_grad_norm(g, 5) == 5.0);
    CHECK(optim_grad_norm(g, 0) == 0.0);
    float neg[2] = {-6, 8};
    CHECK(optim_grad_norm(neg, 2) == 10.0);

    /* a slab large enough for every thread to get work: float64 accumulation is exact to ~1e-12
     * and the value must not depend on the thread count (runs are reproducible on any machine) */
    size_t n = 1000003;
    float *big = malloc(n * sizeof *big);
    HDLM_ASSERT(big);
    double ref = 0;
    for (size_t i = 0; i < n; i++) {
        big[i] = (float)((double)((i * 2654435761u) % 1000) / 1000.0 - 0.5);
        ref += (double)big[i] * big[i];
    }
    ref = sqrt(ref);
    int saved = omp_get_max_threads();
    double by_threads[4];
    for (int nt = 1; nt <= 4; nt++) {
        omp_set_num_threads(nt);
        by_threads[nt - 1] = optim_grad_norm(big, n);
    }
    omp_set_num_threads(saved);
    CHECK_NEAR(by_threads[0], ref, 1e-9 * ref);
    for (int nt = 2; nt <= 4; nt++)
        CHECK(by_threads[nt - 1] == by_threads[0]);
    /* and twice with the same count: the same bits */
    CHECK(optim_grad_norm(big, n) == optim_grad_norm(big, n));
    free(big);
}

/* Several AdamW steps on 6 parameters against float64 arithmetic. Entries 4 and 5 get zero
 * gradients so only weight decay can move them: 4 decays geometrically, 5 must not change. */
static void test_adamw_steps(void) {
    optim_config c = cfg_default();
    c.lr = 2e-2;
    c.min_lr = 2e-3;
    c.warmup = 2;
    c.steps = 6;
    c.schedule = LR_LINEAR;
    c.weight_decay = 0.3;
    enum { N = 6, STEPS = 5 };
    const uint8_t decay[N] = {1, 0, 1, 0, 1, 0};
    float p[N] = {0.5f, -1.25f, 2.0f, 0.125f, 1.5f, -0.75f};
    double rp[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++)
        rp[i] = p[i];
    optim o;
    optim_manual(&o, &c, N, decay, p);
    /* gradients as float literals: computing them as (float)(double expression) let GCC 12.2
     * -O3 -march=native keep the unrounded double in the reference copy below */
    static const float grads[STEPS][4] = {{0.2975f, 0.1782f, -0.05895f, -0.15f},
                                          {-0.07666f, -0.2355f, -0.1318f, 0.185f},
                                          {-0.2777f, -0.004649f, 0.3187f, 0.441f},
                                          {0.1482f, 0.3496f, 0.2755f, 0.04006f},
                                          {0.2395f, 0.02745f, -0.1639f, -0.1126f}};
    for (int k = 0; k < STEPS; k++) {
        float g[N];
        for (int i = 0; i < 4; i++)
            g[i] = grads[k][i];
        g[4] = g[5] = 0;
        double gk[N];
        for (int i = 0; i < N; i++)
            gk[i] = g[i];
        double gn, lr;
        optim_step(&o, p, g, &gn, &lr);

        /* reference: lr at step k, bias corrections with t = k + 1 */
        double a = k < c.warmup ? c.lr * (k + 1) / (double)c.warmup
                                : c.lr + (c.min_lr - c.lr) * (double)(k - c.warmup) /
                                             (double)(c.steps - c.warmup);
        double n2 = 0;
        for (int i = 0; i < N; i++)
            n2 += gk[i] * gk[i];
        CHECK_NEAR(lr, a, 1e-15);
        CHECK_NEAR(gn, sqrt(n2), 1e-12);
        int t = k + 1;
        for (int i = 0; i < N; i++) {
            rm[i] = c.beta1 * rm[i] + (1 - c.beta1) * gk[i];
            rv[i] = c.beta2 * rv[i] + (1 - c.beta2) * gk[i] * gk[i];
            double mh = rm[i] / (1 - pow(c.beta1, t)), vh = rv[i] / (1 - pow(c.beta2, t));
            rp[i] =
                rp[i] - (decay[i] ? a * c.weight_decay * rp[i] : 0) - a * mh / (sqrt(vh) + c.eps);
        }
        for (int i = 0; i < N; i++) {
            CHECK_NEAR(p[i], rp[i], 2e-6);
            CHECK_NEAR(o.m[i], rm[i], 1e-7);
            CHECK_NEAR(o.v[i], rv[i], 1e-8);
        }
        /* the gradient buffer is not modified (callers may inspect it after the step) */
        for (int i = 0; i < N; i++)
            CHECK(g[i] == (float)gk[i]);
    }
    CHECK_EQ(o.t, STEPS);
    /* the zero-gradient entries: decoupled decay only where the table says so */
    CHECK(p[5] == -0.75f);
    double want4 = 1.5;
    for (int k = 0; k < STEPS; k++) {
        double a = k < c.warmup ? c.lr * (k + 1) / (double)c.warmup
                                : c.lr + (c.min_lr - c.lr) * (double)(k - c.warmup) / 4.0;
        want4 *= 1 - a * c.weight_decay;
    }
    CHECK_NEAR(p[4], want4, 1e-6);
    CHECK(p[4] < 1.5f);
    optim_free(&o);
    optim_free(&o); /* freeing twice (zeroed) is harmless */
    optim_free(NULL);
}

/* The first AdamW step moves each parameter by about lr * sign(g) whatever the gradient scale
 * (bias correction makes mh/sqrt(vh) = g/|g|): a check of the correction independent of betas. */
static void test_adamw_first_step(void) {
    optim_config c = cfg_default();
    c.lr = 1e-3;
    c.weight_decay = 0;
    c.beta1 = 0.8;
    c.beta2 = 0.99;
    const uint8_t decay[3] = {0, 0, 0};
    float p[3] = {0, 0, 0}, g[3] = {1e-3f, -50.0f, 2.0f};
    optim o;
    optim_manual(&o, &c, 3, decay, p);
    optim_step(&o, p, g, NULL, NULL); /* gnorm and lr outputs are optional */
    CHECK_NEAR(p[0], -1e-3, 1e-8);
    CHECK_NEAR(p[1], 1e-3, 1e-8);
    CHECK_NEAR(p[2], -1e-3, 1e-8);
    optim_free(&o);
}

static void test_clipping(void) {
    optim_config c = cfg_default();
    c.weight_decay = 0;
    const uint8_t decay[4] = {0, 0, 0, 0};
    float p[4] = {0, 0, 0, 0};
    double gn;

    /* norm 10 above clip 1: the moments see g * 1/(10 + 1e-6); the reported norm is pre-clip */
    c.clip = 1.0;
    optim o;
    optim_manual(&o, &c, 4, decay, p);
    float g[4] = {6, 8, 0, 0};
    optim_step(&o, p, g, &gn, NULL);
    CHECK(gn == 10.0);
    double s = 1.0 / (10.0 + 1e-6);
    /* (tolerances: the moments are float, 1 - beta1 alone is off by 2.4e-7 relative) */
    CHECK_NEAR(o.m[0], 0.1 * 6 * s, 1e-7);
    CHECK_NEAR(o.m[1], 0.1 * 8 * s, 1e-7);
    CHECK_NEAR(o.v[1], 0.05 * (8 * s) * (8 * s), 1e-8);
    CHECK(g[0] == 6.0f && g[1] == 8.0f); /* clipping does not rescale the caller's gradients */
    optim_free(&o);

    /* a norm exactly at the threshold is not clipped */
    c.clip = 10.0;
    optim_manual(&o, &c, 4, decay, p);
    optim_step(&o, p, g, &gn, NULL);
    CHECK_NEAR(o.m[0], 0.6, 1e-6);
    CHECK_NEAR(o.m[1], 0.8, 1e-6);
    optim_free(&o);

    /* below the threshold: untouched */
    c.clip = 100.0;
    optim_manual(&o, &c, 4, decay, p);
    optim_step(&o, p, g, &gn, NULL);
    CHECK_NEAR(o.m[1], 0.8, 1e-6);
    CHECK_NEAR(o.v[1], 0.05 * 64, 1e-6);
    optim_free(&o);

    /* clip <= 0 is off even for a huge norm */
    c.clip = 0;
    float big[4] = {3000, 4000, 0, 0};
    optim_manual(&o, &c, 4, decay, p);
    optim_step(&o, p, big, &gn, NULL);
    CHECK(gn == 5000.0);
    CHECK_NEAR(o.m[1], 400.0, 1e-3);
    optim_free(&o);

    /* with clipping the pre-clip norm is still what gets reported for a multi-step run, and the
     * second step's moments mix clipped gradients */
    c.clip = 0.5;
    optim_manual(&o, &c, 4, decay, p);
    float g1[4] = {0, 0, 3, 4}, g2[4] = {0, 0, 0.3f, 0.1f};
    optim_step(&o, p, g1, &gn, NULL);
    CHECK(gn == 5.0);
    optim_step(&o, p, g2, &gn, NULL);
    CHECK_NEAR(gn, sqrt(0.1), 1e-7);
    double s1 = 0.5 / (5.0 + 1e-6);
    CHECK_NEAR(o.m[3], 0.9 * 0.1 * 4 * s1 + 0.1 * 0.1, 1e-7);
    CHECK_NEAR(o.m[2], 0.9 * 0.1 * 3 * s1 + 0.1 * (double)0.3f, 1e-7);
    optim_free(&o);
}

/* EMA after each step: e = d e + (1 - d) p with d = min(ema, (1 + t)/(10 + t)), t = the number of
 * optimizer steps taken including this one (optim.t after the step). */
static void test_ema(void) {
    const double decays[2] = {0.999, 0.5};
    for (int di = 0; di < 2; di++) {
        optim_config c = cfg_default();
        c.ema = decays[di];
        c.weight_decay = 0;
        const uint8_t decay[2] = {0, 0};
        float p[2] = {1.0f, -2.0f};
        optim o;
        optim_manual(&o, &c, 2, decay, p);
        double re[2] = {1.0, -2.0};
        int capped = 0;
        for (int k = 1; k <= 15; k++) {
            float g[2] = {(float)(k % 3) - 1.0f, 0.5f};
            optim_step(&o, p, g, NULL, NULL);
            double d = (1.0 + k) / (10.0 + k);
            if (c.ema < d) {
                d = c.ema;
                capped = 1;
            }
            for (int i = 0; i < 2; i++) {
                re[i] = d * re[i] + (1 - d) * p[i];
                CHECK_NEAR(o.ema[i], re[i], 2e-6);
            }
        }
        /* 0.999 is never reached in 15 steps (warm-up throughout); 0.5 caps from t = 9 on */
        CHECK_EQ(capped, di == 1);
        optim_free(&o);
    }
    /* the very first EMA update uses d = 2/11: the EMA moves 9/11 of the way to the weights */
    optim_config c = cfg_default();
    c.ema = 0.9999;
    c.lr = 0.5;
    c.weight_decay = 0;
    const uint8_t decay[1] = {0};
    float p[1] = {0.0f}, g[1] = {-1.0f};
    optim o;
    optim_manual(&o, &c, 1, decay, p);
    optim_step(&o, p, g, NULL, NULL);
    CHECK_NEAR(p[0], 0.5, 1e-6);
    CHECK_NEAR(o.ema[0], 0.5 * 9.0 / 11.0, 1e-7);
    optim_free(&o);
}

/* optim_init on a real model: the decay table follows the tensors (matrices yes, vectors no),
 * moments start at zero, the EMA starts as a copy of the weights. */
static void test_init_from_model(void) {
    model_config mc = {.vocab = 20,
                       .d_model = 8,
                       .n_layer = 2,
                       .n_head = 2,
                       .seq_len = 8,
                       .cond = 1,
                       .mask_id = 19,
                       .mix_gamma = 0.01f};
    model m;
    error e = {0};
    CHECK_EQ(model_init(&m, &mc, 7, &e), HDLM_OK);
    optim_config c = cfg_default();
    c.ema = 0.99;
    c.weight_decay = 0.5;
    c.lr = 0.1;
    optim o;
    CHECK_EQ(optim_init(&o, &c, &m, &e), HDLM_OK);
    CHECK_EQ(o.n, m.n_params);
    CHECK_EQ(o.t, 0);
    CHECK(o.ema != NULL && memcmp(o.ema, m.params, m.n_params * sizeof(float)) == 0);
    int table_ok = 1, n_decay = 0, n_vec = 0;
    size_t covered = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const model_tensor *t = &m.tensors[i];
        table_ok &= t->decay == (t->ndim == 2);
        for (size_t j = 0; j < t->size; j++)
            table_ok &= o.decay[t->offset + j] == t->decay;
        n_decay += t->decay;
        n_vec += t->ndim == 1;
        covered += t->size;
    }
    CHECK(table_ok);
    CHECK(n_decay > 0 && n_vec > 0);
    CHECK_EQ(covered, m.n_params);
    int zero = 1;
    for (size_t i = 0; i < o.n; i++)
        zero &= o.m[i] == 0 && o.v[i] == 0;
    CHECK(zero);
    const model_tensor *qkv = model_find_tensor(&m, "blocks.1.attn_qkv.weight");
    const model_tensor *ln = model_find_tensor(&m, "blocks.1.norm1.weight");
    CHECK(qkv && ln);

    /* a step with zero gradients: only weight decay acts, on matrices only */
    float *before = malloc(m.n_params * sizeof *before);
    float *g = calloc(m.n_params, sizeof *g);
    HDLM_ASSERT(before && g);
    memcpy(before, m.params, m.n_params * sizeof *before);
    double gn, lr;
    optim_step(&o, m.params, g, &gn, &lr);
    CHECK(gn == 0.0);
    CHECK(lr == 0.1);
    int decay_ok = 1;
    for (size_t i = 0; i < m.n_params; i++) {
        float want = o.decay[i] ? before[i] - (float)(0.1 * 0.5) * before[i] : before[i];
        decay_ok &= m.params[i] == want;
    }
    CHECK(decay_ok);
    if (qkv && ln) {
        CHECK(m.params[qkv->offset] != before[qkv->offset]);
        CHECK(m.params[ln->offset] == before[ln->offset]);
    }
    free(before);
    free(g);
    optim_free(&o);

    /* without EMA no EMA slab is allocated */
    c.ema = 0;
    CHECK_EQ(optim_init(&o, &c, &m, &e), HDLM_OK);
    CHECK(o.ema == NULL);
    optim_free(&o);
    model_free(&m);
}

int main(void) {
    test_schedule_names();
    test_schedules();
    test_grad_norm();
    test_adamw_steps();
    test_adamw_first_step();
    test_clipping();
    test_ema();
    test_init_from_model();
    return check_report("test_optim");
}
