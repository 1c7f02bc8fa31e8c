/* gamma_hybrid noise plugin, driven through the real plugin host (load_default + instance_create):
 * options and messages, σ tables (spec §1.9), the exact marginal against a matrix exponential of
 * σ·Q_γ, corruption and limit draws (replayed draw by draw and counted), the reference score
 * entropy against an independent transcription of spec §4.2, the exact DSE (≥ 0, 0 at the true
 * score), the whole training loss with settled CE / block weighting / post-processing and its
 * gradient by central differences, the analytic reverse step (§6.5) and the bound term. */
#include "base/rng.h"
#include "check.h"
#include "plugin/host.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static plugin_registry *registry;

/* σ(t) and σ'(t) of the reference's loglinear noise (spec §1.9), written out independently. */
static double ll_sigma(double t) {
    return -log1p(-0.995 * t);
}
static double ll_rate(double t) {
    return 0.995 / (1 - 0.995 * t);
}
static double esigm1(double s) {
    return s < 0.5 ? expm1(s) : exp(s) - 1;
}
static double shift_of(double sigma, int V) {
    return log(esigm1(sigma)) + log((double)V);
}

typedef struct inst {
    plugin_instance *p;
    const hdlm_noise_ops *ops;
    void *self;
} inst;

/* Options current_score / limit for the next make() calls (NULL = the plugin's defaults). */
static const char *opt_current, *opt_limit;

/* An instance with V real tokens; score/noise NULL = defaults; settled_ce < 0 = default. */
static inst make(int V, double gamma, const char *score, const char *noise, int settled_ce) {
    inst r = {0};
    error e = {0};
    plugin_opts *o = plugin_opts_new();
    plugin_opts_set_number(o, "vocab", V);
    plugin_opts_set_number(o, "gamma", gamma);
    if (opt_current) plugin_opts_set_string(o, "current_score", opt_current);
    if (opt_limit) plugin_opts_set_string(o, "limit", opt_limit);
    if (score) plugin_opts_set_string(o, "score", score);
    if (noise) plugin_opts_set_string(o, "noise", noise);
    if (settled_ce >= 0) plugin_opts_set_bool(o, "settled_ce", settled_ce);
    int rc = plugin_instance_create(registry, HDLM_KIND_NOISE, "gamma_hybrid", o, NULL, &r.p, &e);
    CHECK_EQ(rc, HDLM_OK);
    if (rc != HDLM_OK) {
        fprintf(stderr, "create: %s\n", e.msg);
        exit(1);
    }
    r.ops = r.p->ops;
    r.self = r.p->self;
    return r;
}

static hdlm_noise_batch batch_init(int64_t B, int64_t L, int V) {
    hdlm_noise_batch b;
    memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    b.B = B;
    b.L = L;
    b.V = V;
    b.Vp = V + 1;
    b.block = L;
    b.annealed = 1;
    return b;
}

static double uniform_in(rng *r, double lo, double hi) {
    return lo + (hi - lo) * rng_uniform(r);
}

/* ------------------------------------------------------------------------------------------- */
/* an independent dense Q_γ and its matrix exponential (scaling and squaring + Taylor)          */

#define NS_MAX 8

/* Q[to][from]: columns sum to zero; n = V + 1 states, M = V. */
static void q_gamma(int V, double gamma, double Q[NS_MAX][NS_MAX]) {
    int n = V + 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            Q[i][j] = 0;
    for (int j = 0; j < V; j++) {
        Q[V][j] += 1 - gamma; /* absorbing: j -> M */
        Q[j][j] -= 1 - gamma;
        for (int i = 0; i < V; i++) /* uniform among real tokens */
            Q[i][j] += gamma * (i == j ? -(V - 1.0) / V : 1.0 / V);
    }
}

static void mat_mul(int n, double A[NS_MAX][NS_MAX], double B[NS_MAX][NS_MAX],
                    double C[NS_MAX][NS_MAX]) {
    double T[NS_MAX][NS_MAX];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++)
                s += A[i][k] * B[k][j];
            T[i][j] = s;
        }
    memcpy(C, T, sizeof T);
}

static void mat_expm(int n, double X[NS_MAX][NS_MAX], double E[NS_MAX][NS_MAX]) {
    double norm = 0;
    for (int i = 0; i < n; i++) {
        double r = 0;
        for (int j = 0; j < n; j++)
            r += fabs(X[i][j]);
        norm = r > norm ? r : norm;
    }
    int k = 0;
    while (norm / ldexp(1.0, k) > 0.25)
        k++;
    double Y[NS_MAX][NS_MAX], term[NS_MAX][NS_MAX];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            Y[i][j] = X[i][j] / ldexp(1.0, k);
            E[i][j] = term[i][j] = i == j;
        }
    for (int m = 1; m <= 30; m++) {
        mat_mul(n, term, Y, term);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                term[i][j] /= m;
                E[i][j] += term[i][j];
            }
    }
    for (int s = 0; s < k; s++)
        mat_mul(n, E, E, E);
}

/* ------------------------------------------------------------------------------------------- */

static void test_descriptor_and_options(void) {
    inst g = make(5, 0.01, NULL, NULL, -1);
    CHECK_EQ(g.p->info.flags,
             HDLM_INFO_SCORE | HDLM_INFO_CONDITIONED | HDLM_INFO_INPUT_MIX | HDLM_INFO_CONCURRENT);
    CHECK_EQ(g.p->info.n_extra, 1);
    CHECK_EQ(g.p->info.mask_id, 5);
    CHECK(g.p->info.input_mix == 0.01);
    CHECK(g.ops->corrupt && g.ops->conditioning && g.ops->loss && g.ops->reverse && g.ops->limit &&
          g.ops->bound && g.ops->marginal);
    const char *def;
    CHECK_EQ(plugin_opts_string(g.p->opts, "score", &def), HDLM_OK);
    CHECK_STR(def, "reference");
    plugin_instance_destroy(g.p);

    struct {
        const char *key, *text, *expect;
    } bad[] = {
        {"gamma", "1.5", "gamma_hybrid: option 'gamma' must be in [0, 1], got 1.5"},
        {"gamma", "-0.1", "gamma_hybrid: option 'gamma' must be in [0, 1], got -0.1"},
        {"sigma_min", "0", "gamma_hybrid: option 'sigma_min' must be > 0, got 0"},
        {"sigma_max", "1e-5", "option 'sigma_max' must be > sigma_min = 0.0001, got 1e-05"},
        {"score", "approx", "score"},
        {"noise", "cosine", "noise"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        error e = {0};
        plugin_instance *p = NULL;
        plugin_opts *o = plugin_opts_new();
        plugin_opts_set_number(o, "vocab", 5);
        plugin_opts_set_text(o, bad[k].key, bad[k].text);
        CHECK(plugin_instance_create(registry, HDLM_KIND_NOISE, "gamma_hybrid", o, NULL, &p, &e) <
              0);
        CHECK_CONTAINS(e.msg, bad[k].expect);
        CHECK(p == NULL);
    }
    /* without the host-injected vocabulary */
    error e = {0};
    plugin_instance *p = NULL;
    CHECK(plugin_instance_create(registry, HDLM_KIND_NOISE, "gamma_hybrid", plugin_opts_new(), NULL,
                                 &p, &e) < 0);
    CHECK_CONTAINS(e.msg, "vocab");
}

/* Spec §1.9 table (σ, σ', 1 − e^{−σ}) and the geometric schedule. σ' is observed through the loss
 * (loss = σ'·SE/B at an active position with a known SE). */
static void test_sigma_tables(void) {
    const float ts[5] = {1e-4f, 1e-3f, 0.5f, 0.999f, 0.9999f};
    const double sig[5] = {9.9505e-5, 9.9550e-4, 0.68816, 5.11683, 5.27861};
    const double rate[5] = {0.99510, 0.99599, 1.98010, 165.97, 195.12};
    const double mass[5] = {9.95e-5, 9.95e-4, 0.4975, 0.994005, 0.9949005};
    inst g = make(5, 0.0, NULL, NULL, -1); /* γ = 0: q(M) = 1 − e^{−σ} */
    char err[256] = "";
    float out[5];
    CHECK_EQ(g.ops->conditioning(g.self, 5, ts, out, err, sizeof err), HDLM_OK);
    for (int k = 0; k < 5; k++) {
        CHECK(fabs(out[k] - sig[k]) <= 5e-6 * sig[k]); /* the table's 5 significant digits */
        double q[6];
        CHECK_EQ(g.ops->marginal(g.self, 2, ts[k], q, err, sizeof err), HDLM_OK);
        CHECK(fabs(q[5] - mass[k]) <= 5e-6 * mass[k]);
    }
    /* σ' through the loss: xt = M, x0 = 0, logits 0 -> SE_abs known in closed form (γ = 0) */
    hdlm_noise_batch b = batch_init(1, 5, 5);
    int32_t x0[5] = {0, 0, 0, 0, 0}, xt[5] = {5, 5, 5, 5, 5};
    uint8_t state[5] = {1, 1, 1, 1, 1};
    float logits[30] = {0}, loss[5];
    b.x0 = x0;
    b.xt = xt;
    b.t = ts;
    b.state = state;
    b.logits = logits;
    b.loss = loss;
    CHECK_EQ(g.ops->loss(g.self, &b, err, sizeof err), HDLM_OK);
    for (int k = 0; k < 5; k++) {
        double s = ll_sigma(ts[k]), sh = -shift_of(s, 5), r = 1 / (esigm1(s) + 1e-12);
        double se = 5 * exp(sh) - r * sh + r * (log(r + 1e-12) - 1);
        CHECK(fabs(loss[k] / se - rate[k]) <= 5e-5 * rate[k]);
    }
    plugin_instance_destroy(g.p);

    /* geometric: σ_min^{1−t} σ_max^t */
    error e = {0};
    plugin_opts *o = plugin_opts_new();
    plugin_opts_set_number(o, "vocab", 5);
    plugin_opts_set_string(o, "noise", "geometric");
    plugin_opts_set_number(o, "sigma_min", 1e-3);
    plugin_opts_set_number(o, "sigma_max", 10);
    plugin_instance *p = NULL;
    CHECK_EQ(plugin_instance_create(registry, HDLM_KIND_NOISE, "gamma_hybrid", o, NULL, &p, &e),
             HDLM_OK);
    const hdlm_noise_ops *ops = p->ops;
    float tg[3] = {0.0f, 0.25f, 1.0f}, sg[3];
    CHECK_EQ(ops->conditioning(p->self, 3, tg, sg, err, sizeof err), HDLM_OK);
    CHECK_NEAR(sg[0], 1e-3, 1e-9);
    CHECK_NEAR(sg[1], pow(1e-3, 0.75) * pow(10, 0.25), 1e-8);
    CHECK_NEAR(sg[2], 10, 1e-5);
    plugin_instance_destroy(p);
}

/* Exact marginal against exp(σ Q_γ) for V = 4 (5 states). */
static void test_marginal_expm(void) {
    const int V = 4;
    const double gammas[4] = {0, 0.01, 0.3, 1};
    const double times[5] = {1e-4, 1e-3, 0.2, 0.7, 0.9999};
    double worst = 0;
    char err[256];
    for (int gi = 0; gi < 4; gi++) {
        inst g = make(V, gammas[gi], NULL, NULL, -1);
        double Q[NS_MAX][NS_MAX], X[NS_MAX][NS_MAX], E[NS_MAX][NS_MAX];
        q_gamma(V, gammas[gi], Q);
        for (int ti = 0; ti < 5; ti++) {
            double sigma = ll_sigma(times[ti]);
            for (int i = 0; i <= V; i++)
                for (int j = 0; j <= V; j++)
                    X[i][j] = sigma * Q[i][j];
            mat_expm(V + 1, X, E);
            for (int x0 = 0; x0 <= V; x0++) {
                double q[NS_MAX];
                CHECK_EQ(g.ops->marginal(g.self, x0, times[ti], q, err, sizeof err), HDLM_OK);
                double sum = 0;
                for (int y = 0; y <= V; y++) {
                    double d = fabs(q[y] - E[y][x0]);
                    worst = d > worst ? d : worst;
                    sum += q[y];
                }
                CHECK_NEAR(sum, 1, 1e-14);
            }
        }
        double q[NS_MAX];
        CHECK(g.ops->marginal(g.self, 5, 0.5, q, err, sizeof err) < 0);
        CHECK_CONTAINS(err, "marginal: x0 = 5 outside 0..4");
        plugin_instance_destroy(g.p);
    }
    CHECK(worst <= 1e-12);
    printf("marginal vs expm: max abs diff %.3g\n", worst);
}

/* corrupt: replay of the documented draws, then frequencies against the marginal. */
static void test_corrupt(void) {
    const int V = 5;
    const int64_t N = 200000;
    inst g = make(V, 0.3, NULL, NULL, -1); /* large γ so the uniform band is well populated */
    hdlm_noise_batch b = batch_init(1, N, V);
    int32_t *x0 = malloc(N * sizeof *x0), *xt = malloc(N * sizeof *xt);
    float *t = malloc(N * sizeof *t);
    uint8_t *state = malloc(N);
    for (int64_t j = 0; j < N; j++) {
        x0[j] = 2;
        t[j] = j % 2 ? 0.6f : 1e-4f; /* every state is corrupted, settled ones at their own t */
        state[j] = j % 2 ? HDLM_ACTIVE : HDLM_SETTLED;
    }
    rng r, replay;
    rng_init(&r, 42);
    replay = r;
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.state = state;
    b.rng = &r;
    char err[256];
    CHECK_EQ(g.ops->corrupt(g.self, &b, err, sizeof err), HDLM_OK);
    int64_t mismatches = 0, count[2][6] = {{0}};
    for (int64_t j = 0; j < N; j++) {
        double s = ll_sigma(t[j]), A = exp(-0.7 * s), Bq = exp(-0.3 * s);
        double u = rng_uniform(&replay);
        int32_t want = 2;
        if (u < 1 - A)
            want = V;
        else if (u < 1 - A + A * (1 - Bq))
            want = (int32_t)(rng_uniform(&replay) * V);
        mismatches += want != xt[j];
        count[j % 2][xt[j]]++;
    }
    CHECK_EQ(mismatches, 0);
    double q[6];
    CHECK_EQ(g.ops->marginal(g.self, 2, 0.6, q, err, sizeof err), HDLM_OK);
    for (int y = 0; y <= V; y++) {
        double n = N / 2.0, se = sqrt(n * q[y] * (1 - q[y]));
        CHECK(fabs(count[1][y] - n * q[y]) <= 4 * se + 1);
    }
    CHECK(count[0][2] < N / 2 && count[0][2] > N / 2 - 100); /* settled: σ ≈ 1e-4, few moves */
    x0[7] = 6;
    CHECK(g.ops->corrupt(g.self, &b, err, sizeof err) < 0);
    CHECK_CONTAINS(err, "corrupt: x0 token 6 at (b 0, i 7) outside 0..5");
    free(x0);
    free(xt);
    free(t);
    free(state);
    plugin_instance_destroy(g.p);
}

/* The reference score entropy transcribed independently from spec §4.2 (means over all N real
 * channels including x_t, as written there). */
static double se_ref_indep(const double *s, int xt, int x0, double sigma, double gamma, int N) {
    double e = esigm1(sigma), eps = 1e-12;
    if (xt == N) {
        double r = 1 / (e + eps), pos = 0;
        for (int y = 0; y < N; y++)
            pos += exp(s[y]);
        return (1 - gamma) * (pos - r * s[x0] + r * (log(r + eps) - 1));
    }
    double rho = 1 - N / (e + N + eps), ms = 0, me = 0;
    for (int y = 0; y < N; y++) {
        ms += s[y] / N;
        me += exp(s[y]) / N;
    }
    double nu = ms - s[xt] / N, pi = me - exp(s[xt]) / N;
    if (xt == x0) return gamma * (pi - rho * nu + (N - 1.0) / N * rho * (log(rho + eps) - 1));
    return gamma *
           (pi - nu - s[x0] / (e + eps) + ((-log(rho + eps) - 1) / (rho + eps) - (N - 2)) / N);
}

/* The exact DSE from the dense matrices: Σ_{y≠x} Q[x][y]·(e^{s_y} − r_y s_y + r_y(log r_y − 1)),
 * r_y = P[y][x0]/P[x][x0] with P = exp(σQ). */
static double dse_indep(const double *s, int xt, int x0, double sigma, double gamma, int V) {
    double Q[NS_MAX][NS_MAX], X[NS_MAX][NS_MAX], P[NS_MAX][NS_MAX];
    q_gamma(V, gamma, Q);
    for (int i = 0; i <= V; i++)
        for (int j = 0; j <= V; j++)
            X[i][j] = sigma * Q[i][j];
    mat_expm(V + 1, X, P);
    double d = 0;
    for (int y = 0; y <= V; y++) {
        if (y == xt || Q[xt][y] <= 0) continue;
        double r = P[y][x0] / P[xt][x0];
        d += Q[xt][y] * (exp(s[y]) - r * s[y] + (r > 0 ? r * (log(r) - 1) : 0));
    }
    return d;
}

/* Spec §4.2 worked example setting: γ = 0.01, N = 5, σ = 0.6, x_t = (M,3,4,1), x0 = (2,3,0,4).
 * The example's log-scores are not published; random log-scores are compared with the
 * independent transcription, and zero log-scores reproduce the example's 4th entry. */
static void test_score_entropy_reference(void) {
    const int V = 5;
    inst g = make(V, 0.01, NULL, NULL, -1);
    float t1 = (float)(-expm1(-0.6) / 0.995); /* σ(t1) = 0.6 up to float rounding of t */
    double sigma = ll_sigma(t1), shift = shift_of(sigma, V);
    CHECK_NEAR(sigma, 0.6, 1e-6);
    hdlm_noise_batch b = batch_init(1, 4, V);
    int32_t x0[4] = {2, 3, 0, 4}, xt[4] = {5, 3, 4, 1};
    float t[4] = {t1, t1, t1, t1}, logits[24], loss[4];
    uint8_t state[4] = {1, 1, 1, 1};
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.state = state;
    b.logits = logits;
    b.loss = loss;
    char err[256];
    rng r;
    rng_init(&r, 7);
    for (int trial = 0; trial < 20; trial++) {
        for (int k = 0; k < 24; k++)
            logits[k] = trial == 0 ? (float)shift : (float)(uniform_in(&r, -2, 2) + shift);
        CHECK_EQ(g.ops->loss(g.self, &b, err, sizeof err), HDLM_OK);
        double want_total = 0;
        for (int i = 0; i < 4; i++) {
            double s[6];
            for (int y = 0; y < 6; y++)
                s[y] = (double)logits[i * 6 + y] - shift;
            double se = se_ref_indep(s, xt[i], x0[i], sigma, 0.01, V);
            want_total += ll_rate(t1) * se;
            CHECK(fabs(loss[i] / ll_rate(t1) - se) <= 1e-6 * fabs(se) + 1e-9);
            if (trial == 0 && i == 3) CHECK(fabs(loss[i] / ll_rate(t1) - 0.015562) <= 5e-7);
        }
        CHECK(fabs(b.total - want_total) <= 1e-12 * fabs(want_total));
    }
    plugin_instance_destroy(g.p);

    /* γ = 0 with the exact absorbing score s_x0 = log(1/(e^σ − 1)), others −∞: SE ≈ 0 */
    inst g0 = make(V, 0.0, NULL, NULL, -1);
    for (int k = 0; k < 24; k++)
        logits[k] = -1e30f;
    logits[0 * 6 + 2] = (float)log(V); /* s = log V − shift = −log(e^σ − 1) */
    xt[0] = 5;
    state[1] = state[2] = state[3] = HDLM_WORTHLESS;
    for (int i = 1; i < 4; i++)
        xt[i] = x0[i]; /* visible: γ = 0 gives 0 */
    CHECK_EQ(g0.ops->loss(g0.self, &b, err, sizeof err), HDLM_OK);
    CHECK(fabs(loss[0]) <= 1e-6); /* float logits: s_x0 exact to ~1e-7 */
    CHECK(loss[1] == 0 && loss[2] == 0 && loss[3] == 0);
    plugin_instance_destroy(g0.p);
}

/* Exact DSE (score = "exact") through the loss: matches the dense-matrix version, ≥ 0, and 0 at
 * the true score, for x_t = M, x_t = x0 and x_t ≠ x0. */
static void test_exact_dse(void) {
    const int V = 4;
    const double gammas[3] = {0.01, 0.3, 0.9};
    char err[256];
    rng r;
    rng_init(&r, 11);
    for (int gi = 0; gi < 3; gi++) {
        double gam = gammas[gi];
        inst g = make(V, gam, "exact", NULL, -1);
        hdlm_noise_batch b = batch_init(1, 3, V);
        int32_t x0[3] = {1, 1, 1}, xt[3] = {4, 1, 3};
        float t[3] = {0.3f, 0.6f, 0.9f}, logits[15], loss[3];
        uint8_t state[3] = {1, 1, 1};
        b.x0 = x0;
        b.xt = xt;
        b.t = t;
        b.state = state;
        b.logits = logits;
        b.loss = loss;
        for (int trial = 0; trial < 10; trial++) {
            for (int k = 0; k < 15; k++)
                logits[k] = (float)uniform_in(&r, -3, 3);
            CHECK_EQ(g.ops->loss(g.self, &b, err, sizeof err), HDLM_OK);
            for (int i = 0; i < 3; i++) {
                double sigma = ll_sigma(t[i]), shift = shift_of(sigma, V), s[5];
                for (int y = 0; y < 5; y++)
                    s[y] = (double)logits[i * 5 + y] - shift;
                double d = dse_indep(s, xt[i], x0[i], sigma, gam, V);
                CHECK(d > 0);
                CHECK(loss[i] > 0);
                CHECK(fabs(loss[i] / ll_rate(t[i]) - d) <= 1e-6 * d);
            }
        }
        /* the true score: s_y = log r_y wherever a rate enters x_t */
        double Q[NS_MAX][NS_MAX], X[NS_MAX][NS_MAX], P[NS_MAX][NS_MAX];
        q_gamma(V, gam, Q);
        for (int i = 0; i < 3; i++) {
            double sigma = ll_sigma(t[i]), shift = shift_of(sigma, V);
            for (int a = 0; a <= V; a++)
                for (int c = 0; c <= V; c++)
                    X[a][c] = sigma * Q[a][c];
            mat_expm(V + 1, X, P);
            for (int y = 0; y <= V; y++)
                logits[i * 5 + y] = (float)(log(P[y][x0[i]] / P[xt[i]][x0[i]]) + shift);
        }
        CHECK_EQ(g.ops->loss(g.self, &b, err, sizeof err), HDLM_OK);
        for (int i = 0; i < 3; i++)
            CHECK(fabs(loss[i]) <= 1e-9 * ll_rate(t[i]) * (1 + 10 * gam));
        plugin_instance_destroy(g.p);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* the whole loss: settled CE with block weighting, post-processing, worthless weight, gradient */

enum { FB = 2, FL = 8, FV = 5, FVP = 6, FW = 2 };

static void full_batch(hdlm_noise_batch *b, int32_t *x0, int32_t *xt, float *t, uint8_t *state) {
    /* sequence 0: settled prefix of 5 (blocks of 2 -> n_blocks 3, g = 0,0,.5,.5,1), then active
     * (M, x0, other) and one worthless; sequence 1: nothing settled */
    const int32_t x0v[FB][FL] = {{0, 1, 2, 3, 4, 1, 2, 3}, {4, 3, 2, 1, 0, 0, 1, 2}};
    const int32_t xtv[FB][FL] = {{0, 1, 5, 3, 4, 5, 2, 0}, {5, 3, 0, 5, 0, 2, 1, 5}};
    const uint8_t stv[FB][FL] = {{0, 0, 0, 0, 0, 1, 1, 2}, {1, 1, 1, 1, 1, 1, 1, 2}};
    const float tv[FB][FL] = {{1e-4f, 1e-4f, 1e-4f, 1e-4f, 1e-4f, 0.3f, 0.45f, 0.9999f},
                              {0.2f, 0.35f, 0.5f, 0.65f, 0.8f, 0.001f, 0.95f, 0.9999f}};
    for (int i = 0; i < FB * FL; i++) {
        x0[i] = x0v[i / FL][i % FL];
        xt[i] = xtv[i / FL][i % FL];
        state[i] = stv[i / FL][i % FL];
        t[i] = tv[i / FL][i % FL];
    }
    *b = batch_init(FB, FL, FV);
    b->block = FW;
    b->x0 = x0;
    b->xt = xt;
    b->t = t;
    b->state = state;
}

/* total written out from spec §4.2 steps 4–7 and §5.2 steps 6–7, independently. */
static double full_total_indep(const hdlm_noise_batch *b, const float *logits, double gamma,
                               int exact, int ce) {
    double total = 0;
    for (int64_t bi = 0; bi < b->B; bi++) {
        int n_s = 0;
        while (n_s < b->L && b->state[bi * b->L + n_s] == HDLM_SETTLED)
            n_s++;
        int n_blocks = (n_s + (int)b->block - 1) / (int)b->block;
        double D = 0, CE = 0;
        for (int i = 0; i < b->L; i++) {
            int64_t j = bi * b->L + i;
            double sigma = ll_sigma(b->t[j]), s[FVP];
            for (int y = 0; y < FVP; y++)
                s[y] = logits[j * FVP + y] - shift_of(sigma, FV);
            if (i + 1 < b->L && b->state[j + 1] == HDLM_SETTLED) s[FV] = -1000;
            if (b->state[j] == HDLM_SETTLED) {
                double gw = n_blocks == 1 ? 1 : (double)(i / (int)b->block) / (n_blocks - 1);
                double z = 0;
                for (int y = 0; y < FVP; y++)
                    z += exp(s[y]);
                CE += gw * (log(z) - s[b->x0[j]]);
            } else {
                double w = b->state[j] == HDLM_ACTIVE ? 1 : 0.001;
                double se = exact ? dse_indep(s, b->xt[j], b->x0[j], sigma, gamma, FV)
                                  : se_ref_indep(s, b->xt[j], b->x0[j], sigma, gamma, FV);
                D += ll_rate(b->t[j]) * se * w;
            }
        }
        total += D / b->B + (ce && n_s > 0 ? CE / n_s / b->B : 0);
    }
    return total;
}

static void test_full_loss(int exact, int settled_ce) {
    const double gam = 0.05;
    inst g = make(FV, gam, exact ? "exact" : "reference", NULL, settled_ce);
    hdlm_noise_batch b;
    int32_t x0[FB * FL], xt[FB * FL];
    float t[FB * FL], loss[FB * FL], logits[FB * FL * FVP], dlogits[FB * FL * FVP];
    uint8_t state[FB * FL];
    full_batch(&b, x0, xt, t, state);
    rng r;
    rng_init(&r, 5 + exact);
    for (int k = 0; k < FB * FL * FVP; k++)
        logits[k] = (float)uniform_in(&r, -1.5, 1.5);
    b.logits = logits;
    b.loss = loss;
    b.dlogits = dlogits;
    char err[256];
    CHECK_EQ(g.ops->loss(g.self, &b, err, sizeof err), HDLM_OK);
    /* expected total; without settled_ce the CE part is dropped */
    double want = full_total_indep(&b, logits, gam, exact, settled_ce);
    CHECK(fabs(b.total - want) <= 1e-12 * fabs(want));
    if (!settled_ce)
        for (int i = 0; i < 5; i++)
            CHECK(loss[i] == 0);
    double sum = 0;
    for (int i = 0; i < FB * FL; i++)
        sum += loss[i];
    CHECK(fabs(sum - b.total) <= 1e-6 * fabs(b.total));
    /* block weighting: settled positions 0, 1 have g = 0 -> no loss and no gradient */
    if (settled_ce) {
        CHECK(loss[0] == 0 && loss[1] == 0 && loss[2] > 0 && loss[4] > 0);
        /* post-processed mask channels (i = 0..3 have a settled successor) get no gradient */
        for (int i = 0; i < 4; i++)
            CHECK(dlogits[i * FVP + FV] == 0);
        CHECK(dlogits[4 * FVP + FV] != 0); /* the last settled position is not suppressed */
    }
    /* the M channel never enters the score entropy */
    for (int i = 5; i < FB * FL; i++)
        if (i / FL == 1 || i % FL >= 5) CHECK(dlogits[i * FVP + FV] == 0);
    /* central differences of total w.r.t. every raw logit */
    const float h = 1.0f / 1024;
    double worst = 0;
    for (int k = 0; k < FB * FL * FVP; k++) {
        float keep = logits[k];
        logits[k] = keep + h;
        CHECK_EQ(g.ops->loss(g.self, &b, err, sizeof err), HDLM_OK);
        double up = b.total;
        logits[k] = keep - h;
        CHECK_EQ(g.ops->loss(g.self, &b, err, sizeof err), HDLM_OK);
        double down = b.total;
        logits[k] = keep;
        double fd = (up - down) / (2.0 * h);
        CHECK_EQ(g.ops->loss(g.self, &b, err, sizeof err), HDLM_OK);
        double d = fabs(fd - dlogits[k]) / (1 + fabs(fd));
        worst = d > worst ? d : worst;
    }
    CHECK(worst <= 2e-5);
    printf("loss(%s, settled_ce %d): total %.6f, grad check max rel err %.3g\n",
           exact ? "exact" : "reference", settled_ce, b.total, worst);
    plugin_instance_destroy(g.p);
}

static void test_loss_errors(void) {
    inst g = make(FV, 0.01, NULL, NULL, -1);
    hdlm_noise_batch b;
    int32_t x0[FB * FL], xt[FB * FL];
    float t[FB * FL], loss[FB * FL], logits[FB * FL * FVP] = {0};
    uint8_t state[FB * FL];
    full_batch(&b, x0, xt, t, state);
    b.logits = logits;
    b.loss = loss;
    char err[256];
    x0[FL + 2] = 5; /* the mask is not a clean token */
    CHECK(g.ops->loss(g.self, &b, err, sizeof err) < 0);
    CHECK_CONTAINS(err, "loss: x0 token 5 at (b 1, i 2) outside 0..4");
    x0[FL + 2] = 2;
    t[3] = 0;
    CHECK(g.ops->loss(g.self, &b, err, sizeof err) < 0);
    CHECK_CONTAINS(err, "loss: t = 0 at (b 0, i 3) must be in (0, 1]");
    t[3] = 1e-4f;
    b.V = 6;
    CHECK(g.ops->loss(g.self, &b, err, sizeof err) < 0);
    CHECK_CONTAINS(err, "loss: batch has V = 6, Vp = 6; this instance has V = 5, Vp = 6");
    b.V = 5;
    b.block = 0;
    CHECK(g.ops->loss(g.self, &b, err, sizeof err) < 0);
    CHECK_CONTAINS(err, "block width 0");
    b.block = 2;
    logits[FVP * 6 + 1] = 1e30f;
    CHECK(g.ops->loss(g.self, &b, err, sizeof err) < 0);
    CHECK_CONTAINS(err, "non-finite loss");
    plugin_instance_destroy(g.p);
}

/* ------------------------------------------------------------------------------------------- */
/* reverse                                                                                     */

/* The reference's analytic step for one position, written straight from its definition (no
 * rescaling); pinned: the current token's score is 1 (SEDD) instead of its raw channel. */
static void reverse_indep(const float *lg, int xt, double sig_now, double dsig, int last,
                          double gamma, int V, int pinned, double *p) {
    double S[NS_MAX], all = 0, real = 0, shift = shift_of(sig_now, V);
    for (int y = 0; y <= V; y++) {
        S[y] = pinned && y == xt ? 1.0 : exp(lg[y] - shift);
        all += S[y];
        real += y < V ? S[y] : 0;
    }
    double tot = 0;
    for (int y = 0; y <= V; y++) {
        double sa = exp(dsig) * S[y] + (y == V ? (1 - exp(dsig)) * all : 0);
        double su =
            y == V ? S[y] : ((exp(-dsig) - 1) / (V * exp(-dsig))) * real + S[y] / exp(-dsig);
        double T;
        if (xt == V)
            T = y == V ? 1 : 1 - exp(-(1 - gamma) * dsig);
        else
            T = y == V ? 0
                       : exp(-(1 - gamma) * dsig) * (1 - exp(-gamma * dsig)) / V +
                             (y == xt ? exp(-(1 - gamma) * dsig) * exp(-gamma * dsig) : 0);
        p[y] = ((1 - gamma) * sa + gamma * su) * T;
        if (y == V && last) p[y] = 0;
        if (p[y] < 0) p[y] = 0;
        tot += p[y];
    }
    for (int y = 0; y <= V; y++)
        p[y] /= tot;
}

static void test_reverse(int pinned) {
    const int V = 5, Vp = 6;
    opt_current = pinned ? NULL : "reference"; /* pinned is the default */
    char err[256];
    /* §6.5 example: γ = 0.01, V = 5, τ = 4, levels (2, 0, 1), x = (M, M, 3); times as the core
     * computes them (float32, spec §1.8), s from the sampler's δ rule */
    const float a = 1e-3f, delta = (1 - 2 * a) / 3;
    const int level[3] = {2, 0, 1};
    float t[3], s[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (float)level[i] * delta + a;
        s[i] = level[i] == 0 ? t[i] - 0.99f * a : (float)(level[i] - 1) * delta + a;
    }
    inst g = make(V, 0.01, NULL, NULL, -1);
    float sn[3], ss[3];
    CHECK_EQ(g.ops->conditioning(g.self, 3, t, sn, err, sizeof err), HDLM_OK);
    CHECK_EQ(g.ops->conditioning(g.self, 3, s, ss, err, sizeof err), HDLM_OK);
    const double want_now[3] = {1.0877, 9.955e-4, 0.40346},
                 want_d[3] = {0.68421, 9.855e-4, 0.40247};
    const double half_unit_now[3] = {5e-5, 5e-8, 5e-6}, half_unit_d[3] = {5e-6, 5e-8, 5e-6};
    for (int i = 0; i < 3; i++) {
        CHECK(fabs(sn[i] - want_now[i]) <= half_unit_now[i]);
        CHECK(fabs((ll_sigma(t[i]) - ll_sigma(s[i])) - want_d[i]) <= half_unit_d[i]);
        CHECK(fabs(((double)sn[i] - ss[i]) - want_d[i]) <= half_unit_d[i] + 1e-7);
    }
    /* reverse probabilities for that example with random logits, against the transcription
     * (with our σ, 1e-12) and against the spec's printed σ_now, dσ (1e-4) */
    hdlm_noise_batch b = batch_init(1, 4, V);
    int32_t xt[4] = {5, 5, 3, 2};
    uint8_t state[4] = {1, 1, 1, 0};
    float t4[4] = {t[0], t[1], t[2], 1e-4f}, s4[4] = {s[0], s[1], s[2], 1e-4f}, logits[24];
    double probs[24];
    rng r;
    rng_init(&r, 3);
    for (int k = 0; k < 24; k++)
        logits[k] = k < Vp ? 0.0f : (float)uniform_in(&r, -2, 2);
    b.xt = xt;
    b.t = t4;
    b.s = s4;
    b.state = state;
    b.logits = logits;
    b.probs = probs;
    CHECK_EQ(g.ops->reverse(g.self, &b, err, sizeof err), HDLM_OK);
    for (int i = 0; i < 3; i++) {
        double want[NS_MAX], spec[NS_MAX], sum = 0;
        int last = s4[i] <= 2e-4f;
        CHECK_EQ(last, i == 1);
        reverse_indep(logits + i * Vp, xt[i], ll_sigma(t4[i]), ll_sigma(t4[i]) - ll_sigma(s4[i]),
                      last, 0.01, V, pinned, want);
        reverse_indep(logits + i * Vp, xt[i], want_now[i], want_d[i], last, 0.01, V, pinned, spec);
        for (int y = 0; y < Vp; y++) {
            CHECK(fabs(probs[i * Vp + y] - want[y]) <= 1e-12);
            CHECK(fabs(probs[i * Vp + y] - spec[y]) <= 1e-4);
            CHECK(probs[i * Vp + y] >= 0);
            sum += probs[i * Vp + y];
        }
        CHECK_NEAR(sum, 1, 1e-14);
    }
    CHECK(probs[1 * Vp + V] == 0); /* level 0: the mask is forced out */
    if (!pinned) {
        /* position 0 has equal scores: the mask weight (1−γ)(e^{dσ} + 6(1 − e^{dσ}))S + γS is
         * negative at dσ = 0.684 and is clamped to 0 (the reference's argmax never picks it):
         * the unpinned step unmasks at once */
        CHECK(0.99 * (exp(0.68421) + 6 * (1 - exp(0.68421))) + 0.01 < 0);
        CHECK(probs[0 * Vp + V] == 0);
    } else {
        /* pinned: the mask's own score is 1 and the real scores e^{−shift} = 1/(V(e^σ − 1)) sum
         * to 1/(e^σ − 1); the chance of staying masked is that of the true absorbing posterior,
         * (1 − (e^{dσ} − 1)/(e^σ − 1)) up to the γ share */
        double stay = 1 - expm1(want_d[0]) / expm1(want_now[0]);
        CHECK(stay > 0.4);
        CHECK(probs[0 * Vp + V] > 0.3);
    }
    CHECK(probs[2 * Vp + V] == 0); /* a visible token never goes back to the mask */
    CHECK(probs[3 * Vp + 2] == 1); /* not active: point mass on the current token */
    plugin_instance_destroy(g.p);

    /* γ = 0 with the true absorbing score (logits = log(V·p0), mask channel s = 0): the step is
     * the exact posterior q(x_s | x_t = M, x0 ~ p0); a visible token stays */
    inst g0 = make(V, 0.0, NULL, NULL, -1);
    const double p0[5] = {0.1, 0.4, 0.2, 0.25, 0.05};
    float tt[2] = {0.7f, 0.7f}, st[2] = {0.4f, 0.4f}, lg2[12];
    int32_t x2[2] = {5, 1};
    uint8_t st2[2] = {1, 1};
    double pr[12];
    double sig_t = ll_sigma(tt[0]), sig_s = ll_sigma(st[0]);
    for (int i = 0; i < 2; i++) {
        for (int y = 0; y < V; y++)
            lg2[i * Vp + y] = (float)log(V * p0[y]);
        lg2[i * Vp + V] = (float)shift_of(sig_t, V);
    }
    hdlm_noise_batch b2 = batch_init(1, 2, V);
    b2.xt = x2;
    b2.t = tt;
    b2.s = st;
    b2.state = st2;
    b2.logits = lg2;
    b2.probs = pr;
    CHECK_EQ(g0.ops->reverse(g0.self, &b2, err, sizeof err), HDLM_OK);
    double unmask = (exp(-sig_s) - exp(-sig_t)) / (1 - exp(-sig_t));
    for (int y = 0; y < V; y++)
        CHECK(fabs(pr[y] - unmask * p0[y]) <= 1e-6);
    CHECK(fabs(pr[V] - (1 - exp(-sig_s)) / (1 - exp(-sig_t))) <= 1e-6);
    CHECK(pr[Vp + 1] == 1);
    /* no positive weight left (the visible token's own score underflows): keep the token */
    lg2[Vp + 1] = -2000.0f;
    CHECK_EQ(g0.ops->reverse(g0.self, &b2, err, sizeof err), HDLM_OK);
    CHECK(pr[Vp + 1] == 1 && pr[Vp + 0] == 0 && pr[Vp + V] == 0);
    st[0] = 0.8f;
    CHECK(g0.ops->reverse(g0.self, &b2, err, sizeof err) < 0);
    CHECK_CONTAINS(err, "reverse: s = 0.8 > t = 0.7 at (b 0, i 0)");
    plugin_instance_destroy(g0.p);
    opt_current = NULL;
}

/* ------------------------------------------------------------------------------------------- */

static void test_limit(void) {
    opt_limit = "reference";
    const int V = 5;
    const int64_t N = 200000;
    double ab = 1 - exp(-4 * 0.99), ub = (1 - exp(-4 * 0.01)) * exp(-4 * 0.99), pm = ab / (ab + ub);
    CHECK(fabs(pm - 0.99924) <= 5e-6);
    inst g = make(V, 0.01, NULL, NULL, -1);
    hdlm_noise_batch b = batch_init(4, N / 4, V);
    int32_t *xt = malloc(N * sizeof *xt);
    rng r, replay;
    rng_init(&r, 99);
    replay = r;
    b.xt = xt;
    b.rng = &r;
    char err[256];
    CHECK_EQ(g.ops->limit(g.self, &b, err, sizeof err), HDLM_OK);
    int64_t n_mask = 0, mismatches = 0, real_count[5] = {0};
    for (int64_t j = 0; j < N; j++) {
        int32_t want = rng_uniform(&replay) < pm ? V : (int32_t)(rng_uniform(&replay) * V);
        mismatches += want != xt[j];
        if (xt[j] == V)
            n_mask++;
        else
            real_count[xt[j]]++;
    }
    CHECK_EQ(mismatches, 0);
    double se = sqrt(N * pm * (1 - pm));
    CHECK(fabs(n_mask - N * pm) <= 4 * se);
    for (int y = 0; y < V; y++)
        CHECK(real_count[y] > 0);
    printf("limit: P(M) = %.6f, empirical %.6f over %lld draws\n", pm, (double)n_mask / N,
           (long long)N);
    plugin_instance_destroy(g.p);

    /* γ = 1: no mask at all */
    inst g1 = make(V, 1.0, NULL, NULL, -1);
    hdlm_noise_batch b1 = batch_init(1, 1000, V);
    b1.xt = xt;
    b1.rng = &r;
    CHECK_EQ(g1.ops->limit(g1.self, &b1, err, sizeof err), HDLM_OK);
    int any_mask = 0;
    for (int j = 0; j < 1000; j++)
        any_mask |= xt[j] == V;
    CHECK(!any_mask);
    plugin_instance_destroy(g1.p);

    /* the default start: the t = 1 marginal over a uniform clean token, P(M) = 1 − e^{−(1−γ)σ(1)}
     * (σ(1) = −log 0.005), replayed draw by draw */
    opt_limit = NULL;
    const double pm1 = 1 - exp(-0.99 * ll_sigma(1.0));
    CHECK(fabs(pm1 - (1 - pow(0.005, 0.99))) <= 1e-12);
    inst gm = make(V, 0.01, NULL, NULL, -1);
    rng_init(&r, 7);
    replay = r;
    b.rng = &r;
    CHECK_EQ(gm.ops->limit(gm.self, &b, err, sizeof err), HDLM_OK);
    mismatches = 0;
    for (int64_t j = 0; j < N; j++) {
        int32_t want = rng_uniform(&replay) < pm1 ? V : (int32_t)(rng_uniform(&replay) * V);
        mismatches += want != xt[j];
    }
    CHECK_EQ(mismatches, 0);
    plugin_instance_destroy(gm.p);
    free(xt);
}

/* prior: KL( q(x_1 | x0) || start ) by hand, for both starts; infinite (refused) for the
 * reference's start at γ = 0. */
static void test_prior(void) {
    const int V = 5;
    char err[256];
    const double sig1 = ll_sigma(1.0);
    for (int k = 0; k < 3; k++) {
        const double gam = k == 0 ? 0.0 : k == 1 ? 0.01 : 0.05;
        const double A = exp(-(1 - gam) * sig1), B = exp(-gam * sig1);
        const double qm = 1 - A, qo = A * (1 - B) / V, qx = A * B + qo;
        for (int ref = 0; ref < 2; ref++) {
            opt_limit = ref ? "reference" : "marginal";
            inst g = make(V, gam, NULL, NULL, -1);
            double pm;
            if (ref) {
                double ab = 1 - exp(-4 * (1 - gam)), ub = (1 - exp(-4 * gam)) * exp(-4 * (1 - gam));
                pm = ab / (ab + ub);
            } else {
                pm = qm;
            }
            const double pr = (1 - pm) / V;
            double want = qm * log(qm / pm) + qx * log(qx / pr);
            if (qo > 0) want += (V - 1) * qo * log(qo / pr);
            double kl = -1;
            int rc = g.ops->prior(g.self, 2, &kl, err, sizeof err);
            if (ref && gam == 0) {
                CHECK(rc < 0);
                CHECK_CONTAINS(err, "infinite");
            } else {
                CHECK_EQ(rc, HDLM_OK);
                CHECK(kl >= 0);
                CHECK(fabs(kl - want) <= 1e-12 + 1e-10 * want);
            }
            if (!ref && gam == 0) CHECK(fabs(kl - A * log(V)) <= 1e-12); /* only x0 survives */
            CHECK(g.ops->prior(g.self, V, &kl, err, sizeof err) < 0);    /* M is not clean */
            plugin_instance_destroy(g.p);
        }
    }
    opt_limit = NULL;
}

/* bound: (σ(t) − σ(s))·DSE_exact at ACTIVE positions, 0 elsewhere; 0 at the true score. */
static void test_bound(void) {
    const int V = 4, Vp = 5;
    const double gam = 0.1;
    inst g = make(V, gam, NULL, NULL, -1); /* the bound uses the exact DSE whatever `score` is */
    hdlm_noise_batch b = batch_init(1, 4, V);
    int32_t x0[4] = {2, 2, 2, 0}, xt[4] = {4, 2, 0, 0};
    float t[4] = {0.5f, 0.3f, 0.8f, 1e-4f}, s[4] = {0.45f, 0.2f, 0.7f, 1e-4f}, logits[20];
    uint8_t state[4] = {1, 1, 1, 0};
    double bound[4];
    rng r;
    rng_init(&r, 1);
    for (int k = 0; k < 20; k++)
        logits[k] = (float)uniform_in(&r, -2, 2);
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.s = s;
    b.state = state;
    b.logits = logits;
    b.bound = bound;
    char err[256];
    CHECK_EQ(g.ops->bound(g.self, &b, err, sizeof err), HDLM_OK);
    for (int i = 0; i < 3; i++) {
        double sig = ll_sigma(t[i]), sh = shift_of(sig, V), sv[NS_MAX];
        for (int y = 0; y < Vp; y++)
            sv[y] = logits[i * Vp + y] - sh;
        double want = (sig - ll_sigma(s[i])) * dse_indep(sv, xt[i], x0[i], sig, gam, V);
        CHECK(bound[i] > 0);
        CHECK(fabs(bound[i] - want) <= 1e-10 * want);
    }
    CHECK(bound[3] == 0);
    /* at the true score every term vanishes */
    double Q[NS_MAX][NS_MAX], X[NS_MAX][NS_MAX], P[NS_MAX][NS_MAX];
    q_gamma(V, gam, Q);
    for (int i = 0; i < 3; i++) {
        double sig = ll_sigma(t[i]);
        for (int a = 0; a <= V; a++)
            for (int c = 0; c <= V; c++)
                X[a][c] = sig * Q[a][c];
        mat_expm(V + 1, X, P);
        for (int y = 0; y <= V; y++)
            logits[i * Vp + y] = (float)(log(P[y][x0[i]] / P[xt[i]][x0[i]]) + shift_of(sig, V));
    }
    CHECK_EQ(g.ops->bound(g.self, &b, err, sizeof err), HDLM_OK);
    for (int i = 0; i < 3; i++)
        CHECK(fabs(bound[i]) <= 1e-10);
    s[1] = 0.31f;
    CHECK(g.ops->bound(g.self, &b, err, sizeof err) < 0);
    CHECK_CONTAINS(err, "bound: s = 0.31 > t = 0.3 at (b 0, i 1)");
    plugin_instance_destroy(g.p);
}

int main(void) {
    error e = {0};
    char refusals[4096] = "";
    CHECK_EQ(plugin_registry_open(&registry, &e), HDLM_OK);
    CHECK(plugin_registry_load_default(registry, refusals, sizeof refusals, &e) >= 0);
    if (!plugin_registry_find(registry, HDLM_KIND_NOISE, "gamma_hybrid")) {
        fprintf(stderr, "gamma_hybrid plugin not found (refusals: %s)\n", refusals);
        return 1;
    }
    test_descriptor_and_options();
    test_sigma_tables();
    test_marginal_expm();
    test_corrupt();
    test_score_entropy_reference();
    test_exact_dse();
    test_full_loss(0, 1);
    test_full_loss(1, 1);
    test_full_loss(0, 0);
    test_loss_errors();
    test_reverse(0);
    test_reverse(1);
    test_limit();
    test_prior();
    test_bound();
    plugin_registry_close(registry);
    return check_report("test_gamma");
}
