/* Noise plugins absorbing, uniform and epsilon_hybrid, loaded from the build's plugin folder
 * through the real host: options, marginals, corruption statistics and the documented draw order,
 * the spec's §4.1 worked example (driven by a scripted uniform stream), ε = λ = 0 being exactly
 * absorbing, finite-difference checks of every loss gradient, reverse steps against brute-force
 * Bayes, bounds, limits and error messages. */
#include "base/rng.h"
#include "check.h"
#include "lua/l_internal.h"
#include "plugin/host.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

/* ---- setup -------------------------------------------------------------------------------- */

static plugin_registry *reg;

static const char *plugin_dir(void) {
    const char *d = getenv("HDLM_PLUGIN_DIR");
    return d && *d ? d : HDLM_PLUGIN_DIR;
}

static void load_plugins(void) {
    error e = {0};
    CHECK_EQ(plugin_registry_open(&reg, &e), HDLM_OK);
    const char *files[] = {"absorbing.so", "uniform.so", "epsilon_hybrid.so"};
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", plugin_dir(), files[i]);
        int rc = plugin_registry_load_file(reg, path, &e);
        CHECK_EQ(rc, HDLM_OK);
        if (rc) fprintf(stderr, "%s\n", e.msg);
    }
}

/* Instance of `name` for vocab V; extra options as "key=value" texts (NULL-terminated). */
static plugin_instance *make(const char *name, int V, const char *const *kv, error *e) {
    plugin_opts *o = plugin_opts_new();
    if (V > 0) plugin_opts_set_number(o, "vocab", V);
    for (; kv && *kv; kv++) {
        char key[64];
        const char *eq = strchr(*kv, '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - *kv), *kv);
        plugin_opts_set_text(o, key, eq + 1);
    }
    plugin_instance *p = NULL;
    if (plugin_instance_create(reg, HDLM_KIND_NOISE, name, o, NULL, &p, e) != HDLM_OK) return NULL;
    return p;
}

static plugin_instance *make_ok(const char *name, int V, const char *const *kv) {
    error e = {0};
    plugin_instance *p = make(name, V, kv, &e);
    CHECK(p != NULL);
    if (!p) {
        fprintf(stderr, "cannot make %s: %s\n", name, e.msg);
        exit(1);
    }
    return p;
}

static const hdlm_noise_ops *OPS(const plugin_instance *p) {
    return p->ops;
}

static hdlm_noise_batch batch(int64_t B, int64_t L, int32_t V, int32_t Vp) {
    hdlm_noise_batch b;
    memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    b.B = B;
    b.L = L;
    b.V = V;
    b.Vp = Vp;
    b.block = L;
    b.annealed = 1;
    return b;
}

static double lse(const float *lg, int n) {
    double mx = lg[0], z = 0;
    for (int i = 1; i < n; i++)
        mx = lg[i] > mx ? lg[i] : mx;
    for (int i = 0; i < n; i++)
        z += exp((double)lg[i] - mx);
    return mx + log(z);
}

/* ---- scripted uniform stream: a host table whose uniform() returns given numbers ---------- */

typedef struct script {
    const double *u;
    int n, i;
} script;

static double script_uniform(void *p) {
    script *s = p;
    HDLM_ASSERT(s->i < s->n);
    return s->u[s->i++];
}

/* ---- options ------------------------------------------------------------------------------ */

static void test_options(void) {
    error e = {0};
    CHECK(make("absorbing", 0, NULL, &e) == NULL);
    CHECK_CONTAINS(e.msg, "absorbing: option 'vocab' (number of real tokens)");
    const char *bad_eps[] = {"epsilon=1.5", NULL};
    CHECK(make("epsilon_hybrid", 5, bad_eps, &e) == NULL);
    CHECK_CONTAINS(e.msg, "epsilon_hybrid: option 'epsilon' must be in [0, 1], got 1.5");
    const char *bad_lambda[] = {"lambda=-1", NULL};
    CHECK(make("epsilon_hybrid", 5, bad_lambda, &e) == NULL);
    CHECK_CONTAINS(e.msg, "option 'lambda' must be a finite number >= 0, got -1");
    const char *typo[] = {"epsilom=0.1", NULL};
    CHECK(make("epsilon_hybrid", 5, typo, &e) == NULL);
    CHECK_CONTAINS(e.msg, "'epsilom'");
    CHECK_CONTAINS(e.msg, "epsilon");
    const char *aw[] = {"annealed_weights=other", NULL};
    CHECK(make("epsilon_hybrid", 5, aw, &e) == NULL);
    CHECK_CONTAINS(e.msg, "annealed_weights");
    const char *opt_abs[] = {"epsilon=0.1", NULL};
    CHECK(make("absorbing", 5, opt_abs, &e) == NULL); /* absorbing declares no options */
    CHECK_CONTAINS(e.msg, "'epsilon'");

    const char *names[] = {"absorbing", "uniform", "epsilon_hybrid"};
    const int extra[] = {1, 0, 1};
    for (int i = 0; i < 3; i++) {
        plugin_instance *p = make_ok(names[i], 9, NULL);
        CHECK_EQ(p->info.n_extra, extra[i]);
        CHECK_EQ(p->info.flags, HDLM_INFO_CONCURRENT);
        CHECK_EQ(p->info.mask_id, extra[i] ? 9 : -1);
        CHECK(OPS(p)->conditioning == NULL);
        CHECK(OPS(p)->head.struct_size == sizeof(hdlm_noise_ops));
        plugin_instance_destroy(p);
    }
}

/* ---- marginals ---------------------------------------------------------------------------- */

static void test_marginals(void) {
    const int V = 7;
    const double ts[] = {0, 0.001, 0.3, 0.75, 1};
    const char *eps[] = {"epsilon=0.2", NULL};
    plugin_instance *ab = make_ok("absorbing", V, NULL), *un = make_ok("uniform", V, NULL),
                    *eh = make_ok("epsilon_hybrid", V, eps);
    double p[8];
    char err[256];
    for (int k = 0; k < 5; k++) {
        double t = ts[k];
        for (int x0 = 0; x0 < V; x0++) {
            CHECK_EQ(OPS(ab)->marginal(ab->self, x0, t, p, err, sizeof err), HDLM_OK);
            double sum = 0;
            for (int y = 0; y <= V; y++) {
                double want = y == V ? t : y == x0 ? 1 - t : 0;
                CHECK_NEAR(p[y], want, 1e-15);
                sum += p[y];
            }
            CHECK_NEAR(sum, 1, 1e-14);

            CHECK_EQ(OPS(un)->marginal(un->self, x0, t, p, err, sizeof err), HDLM_OK);
            sum = 0;
            for (int y = 0; y < V; y++) {
                CHECK_NEAR(p[y], (y == x0 ? 1 - t : 0) + t / V, 1e-15);
                sum += p[y];
            }
            CHECK_NEAR(sum, 1, 1e-14);

            CHECK_EQ(OPS(eh)->marginal(eh->self, x0, t, p, err, sizeof err), HDLM_OK);
            sum = 0;
            for (int y = 0; y <= V; y++) {
                double want = y == V ? t : y == x0 ? (1 - t) * (0.8 + 0.2 / V) : (1 - t) * 0.2 / V;
                CHECK_NEAR(p[y], want, 1e-15);
                sum += p[y];
            }
            CHECK_NEAR(sum, 1, 1e-14);
        }
    }
    /* the mask stays the mask */
    CHECK_EQ(OPS(ab)->marginal(ab->self, V, 0.3, p, err, sizeof err), HDLM_OK);
    CHECK_NEAR(p[V], 1, 0);
    CHECK_NEAR(p[0], 0, 0);
    CHECK_EQ(OPS(un)->marginal(un->self, V, 0.3, p, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "marginal: x0 = 7 is outside 0..6");
    CHECK_EQ(OPS(eh)->marginal(eh->self, 1, 1.5, p, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "marginal: t = 1.5 must be in [0, 1]");
    plugin_instance_destroy(ab);
    plugin_instance_destroy(un);
    plugin_instance_destroy(eh);
}

/* ---- corruption: statistics over 200k positions match the marginals (4 sigma) ------------- */

static void check_freq(long count, long n, double p) {
    double sd = sqrt(p * (1 - p) / (double)n) + 1e-12;
    CHECK_NEAR((double)count / (double)n, p, 4 * sd);
}

static void test_corrupt_stats(void) {
    const int V = 5;
    const int64_t N = 200000;
    const float t = 0.3f;
    int32_t *x0 = malloc(sizeof(int32_t) * N), *xt = malloc(sizeof(int32_t) * N);
    float *tt = malloc(sizeof(float) * N);
    uint8_t *st = malloc(N);
    for (int64_t j = 0; j < N; j++) {
        x0[j] = (int32_t)(j % V);
        tt[j] = t;
        st[j] = HDLM_ACTIVE;
    }
    const char *eps[] = {"epsilon=0.2", NULL};
    const char *names[] = {"absorbing", "uniform", "epsilon_hybrid"};
    for (int k = 0; k < 3; k++) {
        plugin_instance *p = make_ok(names[k], V, k == 2 ? eps : NULL);
        int Vp = V + p->info.n_extra;
        for (int annealed = 0; annealed <= 1; annealed++) {
            rng r;
            rng_init(&r, 42 + (uint64_t)annealed);
            hdlm_noise_batch b = batch(1, N, V, Vp);
            b.annealed = annealed;
            b.x0 = x0;
            b.xt = xt;
            b.t = tt;
            b.state = st;
            b.rng = &r;
            char err[256] = "";
            CHECK_EQ(OPS(p)->corrupt(p->self, &b, err, sizeof err), HDLM_OK);
            long same = 0, mask = 0, shifted = 0; /* shifted: xt = x0 + 1 mod V */
            for (int64_t j = 0; j < N; j++) {
                same += xt[j] == x0[j];
                mask += xt[j] == V;
                shifted += xt[j] == (x0[j] + 1) % V;
            }
            double q[6];
            OPS(p)->marginal(p->self, 0, t, q, err, sizeof err);
            check_freq(same, N, q[0]);
            check_freq(shifted, N, q[1]);
            if (Vp > V)
                check_freq(mask, N, q[V]);
            else
                CHECK_EQ(mask, 0);
        }
        plugin_instance_destroy(p);
    }
    free(x0);
    free(xt);
    free(tt);
    free(st);
}

/* ---- the documented draw order, replayed from the same seed -------------------------------- */

static void test_draw_order(void) {
    enum { B = 2, L = 7, V = 6 };
    const uint8_t st1[L] = {HDLM_SETTLED, HDLM_SETTLED,   HDLM_ACTIVE,   HDLM_ACTIVE,
                            HDLM_ACTIVE,  HDLM_WORTHLESS, HDLM_WORTHLESS};
    int32_t x0[B * L], xt[B * L], want[B * L];
    float t[B * L];
    uint8_t st[B * L];
    for (int j = 0; j < B * L; j++) {
        x0[j] = (j * 5 + 1) % V;
        t[j] = st1[j % L] == HDLM_SETTLED ? 1e-4f : st1[j % L] == HDLM_WORTHLESS ? 0.9999f : 0.5f;
        st[j] = st1[j % L];
    }
    const char *eps[] = {"epsilon=0.4", NULL};
    const char *names[] = {"absorbing", "uniform", "epsilon_hybrid"};
    for (int k = 0; k < 3; k++) {
        plugin_instance *p = make_ok(names[k], V, k == 2 ? eps : NULL);
        int Vp = V + p->info.n_extra;
        for (uint64_t seed = 1; seed <= 20; seed++) {
            for (int annealed = 0; annealed <= 1; annealed++) {
                rng r, q;
                rng_init(&r, seed);
                rng_init(&q, seed);
                hdlm_noise_batch b = batch(B, L, V, Vp);
                b.annealed = annealed;
                b.x0 = x0;
                b.xt = xt;
                b.t = t;
                b.state = st;
                b.rng = &r;
                char err[256] = "";
                CHECK_EQ(OPS(p)->corrupt(p->self, &b, err, sizeof err), HDLM_OK);
                /* replay: the first pass draws one uniform per position */
                for (int j = 0; j < B * L; j++) {
                    double u = rng_uniform(&q);
                    int s = annealed ? st[j] : HDLM_ACTIVE;
                    if (s == HDLM_SETTLED)
                        want[j] = x0[j];
                    else if (s == HDLM_WORTHLESS)
                        want[j] = k == 1 ? -1 : V;
                    else if (u < t[j])
                        want[j] = k == 1 ? -1 : V;
                    else
                        want[j] = x0[j];
                }
                if (k == 2) /* corruption indicators: one per position */
                    for (int j = 0; j < B * L; j++) {
                        double u = rng_uniform(&q);
                        int s = annealed ? st[j] : HDLM_ACTIVE;
                        if (s == HDLM_ACTIVE && want[j] != V && u < 0.4) want[j] = -1;
                    }
                for (int j = 0; j < B * L; j++)
                    if (want[j] == -1) {
                        int y = (int)(rng_uniform(&q) * V);
                        want[j] = y;
                    }
                int same = 1;
                for (int j = 0; j < B * L; j++)
                    same &= want[j] == xt[j];
                CHECK(same);
                /* both streams stopped at the same place */
                CHECK(rng_u64(&q) == rng_u64(&r));
            }
        }
        plugin_instance_destroy(p);
    }
}

/* ---- spec §4.1 worked example ------------------------------------------------------------- */

static void test_worked_example(void) {
    enum { L = 6, V = 5, Vp = 6 };
    const char *opts[] = {"epsilon=0.01", "lambda=1", NULL};
    plugin_instance *inst = make_ok("epsilon_hybrid", V, opts);
    /* the same plugin made again with a host whose uniform() plays the example's draws:
     * mask uniforms, corruption uniforms, then the replacement (floor(0.7·5) = 3) */
    const double u[] = {0.9, 0.2, 0.55, 0.1, 0.8, 0.35, 0.004, 0.5, 0.9, 0.003, 0.2, 0.6, 0.7};
    script sc = {u, 13, 0};
    hdlm_host h = *plugin_host_table();
    h.uniform = script_uniform;
    void *self = NULL;
    char err[256] = "";
    const hdlm_plugin *d = inst->entry->desc;
    hdlm_create_args ca = {.struct_size = sizeof ca,
                           .host = &h,
                           .opts = inst->opts,
                           .instance = "scripted",
                           .vocab = V,
                           .n_extra = -1,
                           .mask_id = -1};
    CHECK_EQ(d->create(&ca, &self, err, sizeof err), HDLM_OK);
    const hdlm_noise_ops *ops = d->ops;

    const int32_t x0[L] = {0, 1, 2, 3, 4, 0};
    int32_t xt[L];
    float t[L];
    uint8_t st[L];
    const float p = (float)((1 - 1e-4) * 0.4 + 1e-4); /* the reference's p = (1 − ε_s)u + ε_s */
    CHECK_NEAR(p, 0.40006, 1e-7);
    for (int j = 0; j < L; j++) {
        t[j] = p;
        st[j] = HDLM_ACTIVE;
    }
    hdlm_noise_batch b = batch(1, L, V, Vp);
    b.annealed = 0; /* the example is the unannealed hybrid loss (weights carry 1/(1−p)) */
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.state = st;
    b.rng = &sc;
    CHECK_EQ(ops->corrupt(self, &b, err, sizeof err), HDLM_OK);
    CHECK_EQ(sc.i, 13); /* every scripted draw used, no more */
    const int32_t want_xt[L] = {3, 5, 2, 5, 4, 5};
    for (int j = 0; j < L; j++)
        CHECK_EQ(xt[j], want_xt[j]);

    /* the reference's logits are not in the spec: use our own and recover the weights */
    float lg[L * Vp], loss[L], dl[L * Vp];
    for (int j = 0; j < L * Vp; j++)
        lg[j] = (float)(1.5 * sin(0.7 * j + 0.3));
    b.logits = lg;
    b.loss = loss;
    b.dlogits = dl;
    CHECK_EQ(ops->loss(self, &b, err, sizeof err), HDLM_OK);
    const double want_w[L] = {1.65017, 2.49962, 0.016668, 2.49962, 0.016668, 2.49962};
    double total = 0;
    for (int j = 0; j < L; j++) {
        double ce = lse(lg + j * Vp, Vp) - lg[j * Vp + x0[j]];
        double w = loss[j] * (double)L / ce;
        CHECK_NEAR(w, want_w[j], want_w[j] < 0.1 ? 6e-7 : 6e-6); /* the spec's digits */
        total += want_w[j] * ce / L;
    }
    CHECK_NEAR(b.total, total, 1e-4 * total);
    printf("worked example: p = %.6f, xt = (%d,%d,%d,%d,%d,%d), loss on our logits = %.6f\n", p,
           xt[0], xt[1], xt[2], xt[3], xt[4], xt[5], b.total);

    /* annealed, reference weights: masked 1/p, visible λ(1−ε) and λε without 1/(1−p) */
    b.annealed = 1;
    CHECK_EQ(ops->loss(self, &b, err, sizeof err), HDLM_OK);
    const double want_a[L] = {0.99, 1 / 0.40006, 0.01, 1 / 0.40006, 0.01, 1 / 0.40006};
    for (int j = 0; j < L; j++) {
        double ce = lse(lg + j * Vp, Vp) - lg[j * Vp + x0[j]];
        CHECK_NEAR(loss[j] * (double)L / ce, want_a[j], 2e-5 * want_a[j]);
    }
    /* annealed with a settled and a worthless position: they weigh 0 and are not counted */
    st[4] = HDLM_SETTLED;
    st[5] = HDLM_WORTHLESS;
    CHECK_EQ(ops->loss(self, &b, err, sizeof err), HDLM_OK);
    CHECK_NEAR(loss[4], 0, 0);
    CHECK_NEAR(loss[5], 0, 0);
    for (int j = 0; j < 4; j++) {
        double ce = lse(lg + j * Vp, Vp) - lg[j * Vp + x0[j]];
        CHECK_NEAR(loss[j] * 4.0 / ce, want_a[j], 2e-5 * want_a[j]);
    }
    d->destroy(self);

    /* "consistent" keeps the 1/(1−p) factor in annealed batches: the unannealed weights */
    const char *copts[] = {"epsilon=0.01", "lambda=1", "annealed_weights=consistent", NULL};
    plugin_instance *c = make_ok("epsilon_hybrid", V, copts);
    for (int j = 0; j < L; j++)
        st[j] = HDLM_ACTIVE;
    CHECK_EQ(OPS(c)->loss(c->self, &b, err, sizeof err), HDLM_OK);
    for (int j = 0; j < L; j++) {
        double ce = lse(lg + j * Vp, Vp) - lg[j * Vp + x0[j]];
        CHECK_NEAR(loss[j] * (double)L / ce, want_w[j], want_w[j] < 0.1 ? 6e-7 : 6e-6);
    }
    plugin_instance_destroy(c);
    plugin_instance_destroy(inst);
}

/* ---- ε = λ = 0 is absorbing, bit for bit ---------------------------------------------------- */

static void test_eps_zero_is_absorbing(void) {
    enum { B = 3, L = 16, V = 11, Vp = 12 };
    const char *zero[] = {"epsilon=0", "lambda=0", NULL};
    plugin_instance *ab = make_ok("absorbing", V, NULL), *eh = make_ok("epsilon_hybrid", V, zero);
    int32_t x0[B * L], xa[B * L], xe[B * L];
    float t[B * L], lg[B * L * Vp], la[B * L], le[B * L], da[B * L * Vp], de[B * L * Vp];
    uint8_t st[B * L];
    rng g;
    rng_init(&g, 5);
    for (int j = 0; j < B * L; j++) {
        x0[j] = (int32_t)rng_below(&g, V);
        int i = j % L;
        st[j] = i < 4 ? HDLM_SETTLED : i >= 12 ? HDLM_WORTHLESS : HDLM_ACTIVE;
        t[j] = st[j] == HDLM_SETTLED     ? 1e-4f
               : st[j] == HDLM_WORTHLESS ? 0.9999f
                                         : (float)(0.001 + 0.08 * i);
    }
    for (int j = 0; j < B * L * Vp; j++)
        lg[j] = (float)(2 * rng_normal(&g));
    for (int annealed = 0; annealed <= 1; annealed++) {
        rng r1, r2;
        rng_init(&r1, 77);
        rng_init(&r2, 77);
        hdlm_noise_batch a = batch(B, L, V, Vp), e = batch(B, L, V, Vp);
        a.annealed = e.annealed = annealed;
        a.x0 = e.x0 = x0;
        a.t = e.t = t;
        a.state = e.state = st;
        a.logits = e.logits = lg;
        a.xt = xa;
        e.xt = xe;
        a.rng = &r1;
        e.rng = &r2;
        a.loss = la;
        e.loss = le;
        a.dlogits = da;
        e.dlogits = de;
        char err[256] = "";
        CHECK_EQ(OPS(ab)->corrupt(ab->self, &a, err, sizeof err), HDLM_OK);
        CHECK_EQ(OPS(eh)->corrupt(eh->self, &e, err, sizeof err), HDLM_OK);
        CHECK(memcmp(xa, xe, sizeof xa) == 0);
        int n_mask = 0;
        for (int j = 0; j < B * L; j++)
            n_mask += xa[j] == V;
        CHECK(n_mask > 5 && n_mask < B * L);
        CHECK_EQ(OPS(ab)->loss(ab->self, &a, err, sizeof err), HDLM_OK);
        CHECK_EQ(OPS(eh)->loss(eh->self, &e, err, sizeof err), HDLM_OK);
        CHECK(a.total == e.total);
        CHECK(a.total > 0);
        CHECK(memcmp(la, le, sizeof la) == 0);
        int same = 1;
        for (int j = 0; j < B * L * Vp; j++)
            same &= da[j] == de[j];
        CHECK(same);
    }
    plugin_instance_destroy(ab);
    plugin_instance_destroy(eh);
}

/* ---- loss: the hand formula, and dlogits against central differences of `total` ------------ */

static double total_of(const plugin_instance *p, hdlm_noise_batch *b) {
    char err[256] = "";
    float *keep = b->dlogits;
    b->dlogits = NULL;
    int rc = OPS(p)->loss(p->self, b, err, sizeof err);
    b->dlogits = keep;
    HDLM_ASSERT(rc == HDLM_OK);
    return b->total;
}

static void grad_check(const char *name, const char *const *opts, int annealed) {
    enum { B = 2, L = 6, V = 5 };
    plugin_instance *p = make_ok(name, V, opts);
    const int Vp = V + p->info.n_extra;
    int32_t x0[B * L], xt[B * L];
    float t[B * L], lg[B * L * 6], loss[B * L], dl[B * L * 6];
    uint8_t st[B * L];
    rng g;
    rng_init(&g, 11 + (uint64_t)annealed);
    for (int j = 0; j < B * L; j++) {
        x0[j] = (int32_t)rng_below(&g, V);
        int i = j % L;
        st[j] = i == 0 ? HDLM_SETTLED : i == L - 1 ? HDLM_WORTHLESS : HDLM_ACTIVE;
        t[j] = st[j] == HDLM_SETTLED ? 1e-4f : st[j] == HDLM_WORTHLESS ? 0.9999f : 0.55f;
    }
    for (int j = 0; j < B * L * Vp; j++)
        lg[j] = (float)(1.5 * rng_normal(&g));
    hdlm_noise_batch b = batch(B, L, V, Vp);
    b.annealed = annealed;
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.state = st;
    b.logits = lg;
    b.loss = loss;
    b.dlogits = dl;
    b.rng = &g;
    char err[256] = "";
    CHECK_EQ(OPS(p)->corrupt(p->self, &b, err, sizeof err), HDLM_OK);
    CHECK_EQ(OPS(p)->loss(p->self, &b, err, sizeof err), HDLM_OK);
    double sum = 0;
    for (int j = 0; j < B * L; j++)
        sum += loss[j];
    CHECK_NEAR(sum, b.total, 1e-5 * fabs(b.total) + 1e-7);
    CHECK(b.total > 0);
    double worst = 0;
    int nonzero = 0;
    for (int k = 0; k < B * L * Vp; k++) {
        float x = lg[k];
        float xp = x + 1e-3f, xm = x - 1e-3f;
        lg[k] = xp;
        double fp = total_of(p, &b);
        lg[k] = xm;
        double fm = total_of(p, &b);
        lg[k] = x;
        double fd = (fp - fm) / ((double)xp - (double)xm);
        double diff = fabs(fd - dl[k]) / (1e-2 + fabs(fd));
        worst = diff > worst ? diff : worst;
        nonzero += dl[k] != 0;
    }
    CHECK(worst < 2e-5); /* float dlogits vs double differences: ~1e-7 when right */
    CHECK(nonzero > 0);
    printf("grad check %s annealed=%d: worst %g\n", name, annealed, worst);
    plugin_instance_destroy(p);
}

static void test_gradients(void) {
    const char *eps[] = {"epsilon=0.3", "lambda=0.7", NULL};
    const char *cons[] = {"epsilon=0.3", "lambda=0.7", "annealed_weights=consistent", NULL};
    for (int a = 0; a <= 1; a++) {
        grad_check("absorbing", NULL, a);
        grad_check("uniform", NULL, a);
        grad_check("epsilon_hybrid", eps, a);
        grad_check("epsilon_hybrid", cons, a);
    }
}

/* The absorbing "standard" loss by hand: annealed normalises by the active count, unannealed by
 * B·L; CE over all V+1 classes. */
static void test_absorbing_loss_values(void) {
    enum { L = 4, V = 3, Vp = 4 };
    plugin_instance *p = make_ok("absorbing", V, NULL);
    const int32_t x0[L] = {0, 1, 2, 1};
    int32_t xt[L] = {0, 3, 3, 3};
    const float t[L] = {1e-4f, 0.5f, 0.25f, 0.9999f};
    const uint8_t st[L] = {HDLM_SETTLED, HDLM_ACTIVE, HDLM_ACTIVE, HDLM_WORTHLESS};
    float lg[L * Vp] = {0}, loss[L];
    lg[1 * Vp + 1] = 1; /* position 1: CE = log(e + 3) − 1 */
    hdlm_noise_batch b = batch(1, L, V, Vp);
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.state = st;
    b.logits = lg;
    b.loss = loss;
    char err[256] = "";
    CHECK_EQ(OPS(p)->loss(p->self, &b, err, sizeof err), HDLM_OK);
    double ce1 = log(exp(1) + 3) - 1, ce2 = log(4);
    CHECK_NEAR(b.total, (ce1 / 0.5 + ce2 / 0.25) / 2, 1e-6);
    b.annealed = 0; /* all positions count; the worthless mask at t = 0.9999 too */
    CHECK_EQ(OPS(p)->loss(p->self, &b, err, sizeof err), HDLM_OK);
    CHECK_NEAR(b.total, (ce1 / 0.5 + ce2 / 0.25 + log(4) / (double)0.9999f) / 4, 1e-6);
    plugin_instance_destroy(p);

    /* uniform: plain CE at active positions over V classes */
    plugin_instance *u = make_ok("uniform", 3, NULL);
    int32_t xu[L] = {0, 2, 2, 1};
    float lu[L * 3] = {0};
    lu[1 * 3 + 1] = 2;
    b = batch(1, L, 3, 3);
    b.x0 = x0;
    b.xt = xu;
    b.t = t;
    b.state = st;
    b.logits = lu;
    b.loss = loss;
    CHECK_EQ(OPS(u)->loss(u->self, &b, err, sizeof err), HDLM_OK);
    CHECK_NEAR(b.total, ((log(exp(2) + 2) - 2) + log(3)) / 2, 1e-6);
    plugin_instance_destroy(u);
}

/* ---- reverse ------------------------------------------------------------------------------ */

static void test_reverse_absorbing(const char *name) {
    enum { L = 4, V = 5, Vp = 6 };
    plugin_instance *p = make_ok(name, V, NULL);
    int32_t xt[L] = {5, 2, 5, 5};
    const float t[L] = {0.8f, 0.8f, 0.5f, 0.5f}, s[L] = {0.2f, 0.2f, 0.5f, 0.0f};
    const uint8_t st[L] = {HDLM_ACTIVE, HDLM_ACTIVE, HDLM_ACTIVE, HDLM_WORTHLESS};
    float lg[L * Vp];
    double pr[L * Vp];
    for (int j = 0; j < L * Vp; j++) {
        lg[j] = (float)cos(1.3 * j);
        pr[j] = -1;
    }
    hdlm_noise_batch b = batch(1, L, V, Vp);
    b.xt = xt;
    b.t = t;
    b.s = s;
    b.state = st;
    b.logits = lg;
    b.probs = pr;
    char err[256] = "";
    CHECK_EQ(OPS(p)->reverse(p->self, &b, err, sizeof err), HDLM_OK);
    double keep = (double)0.2f / (double)0.8f, z = lse(lg, V), sum = 0;
    for (int y = 0; y < V; y++) {
        CHECK_NEAR(pr[y], (1 - keep) * exp(lg[y] - z), 1e-15);
        sum += pr[y];
    }
    CHECK_NEAR(pr[V], keep, 1e-15);
    CHECK_NEAR(sum + pr[V], 1, 1e-14);
    for (int y = 0; y < Vp; y++) /* visible: carry-over */
        CHECK_NEAR(pr[Vp + y], y == 2, 0);
    CHECK_NEAR(pr[2 * Vp + V], 1, 1e-15); /* s = t: stays masked */
    for (int y = 0; y < Vp; y++)          /* not active: untouched */
        CHECK_NEAR(pr[3 * Vp + y], -1, 0);
    /* s > t is refused */
    const float bad_s[L] = {0.9f, 0.2f, 0.5f, 0.0f};
    b.s = bad_s;
    CHECK_EQ(OPS(p)->reverse(p->self, &b, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "reverse: position 0 has t = 0.8, s = 0.9");
    plugin_instance_destroy(p);
}

/* Brute force for the uniform process: kernels as V×V matrices, Bayes normalised by summation. */
static void test_reverse_uniform(void) {
    enum { V = 6, L = 3 };
    plugin_instance *p = make_ok("uniform", V, NULL);
    const float t[L] = {0.7f, 0.05f, 1.0f}, s[L] = {0.3f, 0.01f, 0.6f};
    int32_t xt[L] = {2, 4, 0};
    const int32_t x0[L] = {2, 1, 5};
    const uint8_t st[L] = {HDLM_ACTIVE, HDLM_ACTIVE, HDLM_ACTIVE};
    float lg[L * V];
    for (int j = 0; j < L * V; j++)
        lg[j] = (float)(1.2 * sin(0.9 * j + 0.4));
    double pr[L * V], bd[L];
    hdlm_noise_batch b = batch(1, L, V, V);
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.s = s;
    b.state = st;
    b.logits = lg;
    b.probs = pr;
    b.bound = bd;
    char err[256] = "";
    CHECK_EQ(OPS(p)->reverse(p->self, &b, err, sizeof err), HDLM_OK);
    CHECK_EQ(OPS(p)->bound(p->self, &b, err, sizeof err), HDLM_OK);
    for (int j = 0; j < L; j++) {
        double tj = t[j], sj = s[j], r = (tj - sj) / (1 - sj);
        double K0s[V][V], Kst[V][V], q0t[V]; /* K0s[y][a] = q(x_s=y|x0=a), Kst[k][y] */
        for (int y = 0; y < V; y++)
            for (int a = 0; a < V; a++) {
                K0s[y][a] = (1 - sj) * (y == a) + sj / V;
                Kst[y][a] = (1 - r) * (y == a) + r / V;
            }
        /* the one-step kernel composes to the plugin's marginal at t */
        for (int a = 0; a < V; a++) {
            OPS(p)->marginal(p->self, a, tj, q0t, err, sizeof err);
            for (int k = 0; k < V; k++) {
                double c = 0;
                for (int y = 0; y < V; y++)
                    c += Kst[k][y] * K0s[y][a];
                CHECK_NEAR(c, q0t[k], 1e-12);
            }
        }
        const int k = xt[j];
        double ph[V], z = lse(lg + j * V, V), model[V] = {0}, sum = 0;
        for (int a = 0; a < V; a++)
            ph[a] = exp(lg[j * V + a] - z);
        double truth[V] = {0}; /* filled at a == x0[j] */
        for (int a = 0; a < V; a++) {
            double post[V], zz = 0;
            for (int y = 0; y < V; y++)
                zz += post[y] = Kst[k][y] * K0s[y][a];
            for (int y = 0; y < V; y++) {
                model[y] += ph[a] * post[y] / zz;
                if (a == x0[j]) truth[y] = post[y] / zz;
            }
        }
        double kl = 0;
        for (int y = 0; y < V; y++) {
            CHECK_NEAR(pr[j * V + y], model[y], 1e-12);
            sum += pr[j * V + y];
            kl += truth[y] * log(truth[y] / model[y]);
        }
        CHECK_NEAR(sum, 1, 1e-12);
        CHECK_NEAR(bd[j], kl, 1e-12);
        CHECK(bd[j] > 0);
    }
    /* a model that knows x0 has a zero KL */
    for (int j = 0; j < L * V; j++)
        lg[j] = (j % V) == x0[j / V] ? 40.0f : 0.0f;
    CHECK_EQ(OPS(p)->bound(p->self, &b, err, sizeof err), HDLM_OK);
    for (int j = 0; j < L; j++)
        CHECK_NEAR(bd[j], 0, 1e-12);
    plugin_instance_destroy(p);
}

/* ---- bound (absorbing family) -------------------------------------------------------------- */

static void test_bound_absorbing(const char *name) {
    enum { L = 4, V = 5, Vp = 6 };
    plugin_instance *p = make_ok(name, V, NULL);
    const int32_t x0[L] = {1, 3, 0, 4};
    int32_t xt[L] = {5, 3, 5, 5};
    const float t[L] = {0.8f, 0.8f, 0.5f, 0.9999f}, s[L] = {0.2f, 0.2f, 0.1f, 0.5f};
    const uint8_t st[L] = {HDLM_ACTIVE, HDLM_ACTIVE, HDLM_ACTIVE, HDLM_WORTHLESS};
    float lg[L * Vp];
    for (int j = 0; j < L * Vp; j++)
        lg[j] = (float)sin(0.37 * j * j);
    double bd[L];
    hdlm_noise_batch b = batch(1, L, V, Vp);
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.s = s;
    b.state = st;
    b.logits = lg;
    b.bound = bd;
    char err[256] = "";
    CHECK_EQ(OPS(p)->bound(p->self, &b, err, sizeof err), HDLM_OK);
    CHECK_NEAR(bd[0], (0.8 - (double)0.2f) / 0.8 * (lse(lg, V) - lg[1]), 1e-6);
    CHECK_NEAR(bd[1], 0, 0);
    CHECK_NEAR(bd[2], ((double)0.5f - (double)0.1f) / 0.5 * (lse(lg + 2 * Vp, V) - lg[2 * Vp]),
               1e-6);
    CHECK_NEAR(bd[3], 0, 0);
    /* the real-token CE is never above the all-classes one (spec §4.4's) */
    CHECK(bd[0] <= (0.8 - (double)0.2f) / 0.8 * (lse(lg, Vp) - lg[1]));
    xt[1] = 2; /* visible but != x0: not a masking outcome */
    CHECK_EQ(OPS(p)->bound(p->self, &b, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "bound: position 1 is visible with x_t = 2 != x0 = 3");
    plugin_instance_destroy(p);
}

/* ---- limit -------------------------------------------------------------------------------- */

static void test_limit(void) {
    enum { N = 60000, V = 4 };
    int32_t *xt = malloc(sizeof(int32_t) * N);
    const char *names[] = {"absorbing", "uniform", "epsilon_hybrid"};
    for (int k = 0; k < 3; k++) {
        plugin_instance *p = make_ok(names[k], V, NULL);
        int Vp = V + p->info.n_extra;
        rng r;
        rng_init(&r, 3);
        hdlm_noise_batch b = batch(1, N, V, Vp);
        b.xt = xt;
        b.rng = &r;
        char err[256] = "";
        CHECK_EQ(OPS(p)->limit(p->self, &b, err, sizeof err), HDLM_OK);
        long count[5] = {0};
        for (int j = 0; j < N; j++)
            count[xt[j] >= 0 && xt[j] <= V ? xt[j] : 0]++;
        if (Vp > V)
            CHECK_EQ(count[V], N);
        else
            for (int y = 0; y < V; y++)
                check_freq(count[y], N, 1.0 / V);
        plugin_instance_destroy(p);
    }
    free(xt);
}

/* ---- error messages ----------------------------------------------------------------------- */

static void test_errors(void) {
    enum { L = 4, V = 5, Vp = 6 };
    plugin_instance *p = make_ok("epsilon_hybrid", V, NULL);
    int32_t x0[L] = {1, 2, 9, 0}, xt[L] = {1, 5, 5, 0};
    const float t[L] = {0.5f, 0.5f, 0.5f, 0.5f};
    const uint8_t st[L] = {HDLM_ACTIVE, HDLM_ACTIVE, HDLM_ACTIVE, HDLM_ACTIVE};
    float lg[L * Vp] = {0}, loss[L];
    hdlm_noise_batch b = batch(1, L, V, Vp);
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.state = st;
    b.logits = lg;
    b.loss = loss;
    char err[256] = "";
    CHECK_EQ(OPS(p)->loss(p->self, &b, err, sizeof err), HDLM_EINVAL);
    CHECK_STR(err, "loss: x0[2] = 9 is outside 0..4");
    x0[2] = 3;
    b.loss = NULL;
    CHECK_EQ(OPS(p)->loss(p->self, &b, err, sizeof err), HDLM_EINVAL);
    CHECK_STR(err, "loss: batch field 'loss' is NULL");
    b.loss = loss;
    b.Vp = V;
    CHECK_EQ(OPS(p)->loss(p->self, &b, err, sizeof err), HDLM_EINVAL);
    CHECK_STR(err, "loss: batch has V = 5, Vp = 5; this instance has vocab 5, Vp 6");
    b.Vp = Vp;
    const float t1[L] = {1.0f, 0.5f, 0.5f, 0.5f}; /* visible at t = 1: 1/(1−p) is infinite */
    b.t = t1;
    b.annealed = 0;
    CHECK_EQ(OPS(p)->loss(p->self, &b, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "loss: t[0] = 1 at a visible position must be in [0, 1)");
    plugin_instance_destroy(p);

    plugin_instance *a = make_ok("absorbing", V, NULL);
    const float t0[L] = {0.5f, 0.0f, 0.5f, 0.5f}; /* masked at t = 0: weight 1/t */
    b.t = t0;
    CHECK_EQ(OPS(a)->loss(a->self, &b, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "loss: t[1] = 0 at a masked position must be in (0, 1]");
    plugin_instance_destroy(a);
}

/* ---- l_to_noise: the trainer's way from a Lua noise spec to an instance ------------------ */

/* to_noise(spec, vocab) -> name, vocab, epsilon option (or nil) of the instance made */
static int call_to_noise(lua_State *L) {
    plugin_instance *p = l_to_noise(L, 1, (int)luaL_checkinteger(L, 2));
    double v = 0, eps = -1;
    plugin_opts_number(p->opts, "vocab", &v);
    int has_eps = plugin_opts_number(p->opts, "epsilon", &eps) == HDLM_OK;
    lua_pushstring(L, p->entry->desc->name);
    lua_pushinteger(L, (lua_Integer)v);
    if (has_eps)
        lua_pushnumber(L, eps);
    else
        lua_pushnil(L);
    plugin_instance_destroy(p);
    return 3;
}

static void test_to_noise(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    l_ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    lua_setfield(L, LUA_REGISTRYINDEX, "hdlm.ctx");
    lua_newtable(L); /* a module table holding only hdlm.noise, as luaopen_hdlm builds it */
    lua_pushlightuserdata(L, c);
    int ctx_idx = lua_gettop(L);
    lua_pushvalue(L, ctx_idx - 1);
    l_noise_register(L, ctx_idx);
    lua_pop(L, 2);
    lua_setglobal(L, "hdlm");
    lua_pushcfunction(L, call_to_noise);
    lua_setglobal(L, "to_noise");
    const char *chunk = "local n = hdlm.noise{'epsilon_hybrid', vocab = 5, epsilon = 0.2}\n"
                        "local a, b, c = to_noise(n, 11)\n"
                        "local d, e, f = to_noise({'absorbing'}, 7)\n"
                        "local g, h = to_noise({'uniform', vocab = 9}, 9)\n"
                        "local ok1, err1 = pcall(to_noise, {'absorbing', vocab = 5}, 7)\n"
                        "local ok2, err2 = pcall(to_noise, 42, 7)\n"
                        "local ok3, err3 = pcall(to_noise, {'absorbing', lambda = 1}, 7)\n"
                        "return a, b, c, d, e, f, g, h, err1, err2, err3, ok1 or ok2 or ok3\n";
    int rc = luaL_dostring(L, chunk);
    CHECK_EQ(rc, LUA_OK);
    if (rc != LUA_OK) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    if (rc == LUA_OK) {
        CHECK_STR(lua_tostring(L, 1), "epsilon_hybrid"); /* a Noise: its options, the new vocab */
        CHECK_EQ(lua_tointeger(L, 2), 11);
        CHECK_NEAR(lua_tonumber(L, 3), 0.2, 0);
        CHECK_STR(lua_tostring(L, 4), "absorbing"); /* a plain table without vocab */
        CHECK_EQ(lua_tointeger(L, 5), 7);
        CHECK(lua_isnil(L, 6));
        CHECK_STR(lua_tostring(L, 7), "uniform"); /* a table naming the same vocab */
        CHECK_EQ(lua_tointeger(L, 8), 9);
        CHECK_CONTAINS(lua_tostring(L, 9),
                       "noise: the spec says vocab = 5 but the data has 7 tokens");
        CHECK_CONTAINS(lua_tostring(L, 10), "noise: expected a Noise (hdlm.noise{...}) or a table");
        CHECK_CONTAINS(lua_tostring(L, 11), "noise: absorbing: unknown option 'lambda'");
        CHECK(!lua_toboolean(L, 12));
    }
    plugin_registry *r = c->plugins; /* c lives in the Lua state */
    lua_close(L);                    /* Noise finalizers run before the registry goes */
    plugin_registry_close(r);
}

int main(void) {
    load_plugins();
    test_options();
    test_marginals();
    test_corrupt_stats();
    test_draw_order();
    test_worked_example();
    test_eps_zero_is_absorbing();
    test_absorbing_loss_values();
    test_gradients();
    test_reverse_absorbing("absorbing");
    test_reverse_absorbing("epsilon_hybrid");
    test_reverse_uniform();
    test_bound_absorbing("absorbing");
    test_bound_absorbing("epsilon_hybrid");
    test_limit();
    test_errors();
    test_to_noise();
    plugin_registry_close(reg);
    return check_report("test_noise");
}
