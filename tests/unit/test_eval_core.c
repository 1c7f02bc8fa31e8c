/* The evaluator (diffusion/eval.c) without training: eval_bound on a model with random weights
 * of trained-like scale, the five shipped schedule plugins, and the probe noise fixture of
 * tests/plugins/probes (loaded through the real plugin host), whose bound term is known in closed
 * form, so every number below is exact:
 *   - bound = const c per ACTIVE position: the exact bound (mc = 0) of a sequence is c times the
 *     number of active (position, step) pairs of the schedule, counted here from its levels; the
 *     stratified Monte-Carlo estimate with mc = K and mc = 2K (K steps; every stratum holds one
 *     step, or two) equals it to 1e-12, in the vectorised 2L layout and in per-step passes;
 *   - bound = t − s: summed over a position's steps it telescopes to 1 when the chain starts at
 *     t = 1 (the first active step comes from the limit) and ends at s = 0 (settling), so the
 *     bound of a sequence is its length L — again for mc = 0, K and 2K and both layouts;
 *   - the (t, s), states and inputs of every per-step bound term: the sampling loop's times
 *     (first active step t = 1, then the level's time; s = the next step's time, 0 when the
 *     position settles next), settled positions clean, worthless and first-active ones masked;
 *   - the logits of every term, per-step and in the 2L layout, equal a forward of the same tokens
 *     with the sampling loop's attention rows (every schedule, simple annealing included);
 *   - eval_summarise: mean, standard error over sequences and per-token normalisation against
 *     numbers computed by hand. */
#include "base/rng.h"
#include "check.h"
#include "diffusion/eval.h"
#include "diffusion/hyper.h"
#include "nn/mask.h"
#include "nn/model.h"
#include "plugin/host.h"
#include "plugins/probes/probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V     10 /* real tokens; the probe adds the mask, id V */
#define VP    (V + 1)
#define NSEQ  3
#define L_MAX 16

static plugin_registry *reg;

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) abort();
    return p;
}

/* An instance of a plugin; opts = "key=value,key=value" or "". */
static plugin_instance *make(uint32_t kind, const char *name, const char *opts) {
    plugin_opts *o = plugin_opts_new();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", opts);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        HDLM_ASSERT(eq);
        *eq = '\0';
        plugin_opts_set_text(o, tok, eq + 1);
    }
    if (kind == HDLM_KIND_NOISE) plugin_opts_set_number(o, "vocab", V);
    plugin_instance *p = NULL;
    error e = {0};
    if (plugin_instance_create(reg, kind, name, o, NULL, &p, &e) != HDLM_OK) {
        fprintf(stderr, "cannot make %s(%s): %s\n", name, opts, e.msg);
        exit(1);
    }
    return p;
}

/* Trained-like magnitudes (as test_model.c); model_init zeroes the output layer. */
static void randomize(model *m, float gain, uint64_t seed) {
    rng r;
    rng_init(&r, seed);
    float vec = gain / sqrtf((float)m->cfg.d_model);
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        int norm = strstr(t->name, "norm") != NULL;
        float a = norm ? 0.3f : t->ndim == 2 ? gain / sqrtf((float)t->shape[1]) : vec;
        for (size_t j = 0; j < t->size; j++)
            m->params[t->offset + j] =
                (norm ? 1.0f : 0.0f) + (float)((2 * rng_uniform(&r) - 1) * (double)a);
    }
}

static int rel_close(double a, double b, double tol) {
    return fabs(a - b) <= tol * fmax(1.0, fabs(b));
}

/* ---- schedules ------------------------------------------------------------------------------ */

typedef struct scase {
    const char *name, *opts;
    int L;
    int vectorisable; /* the 2L layout applies (whole blocks settle, block < L) */
} scase;

static const scase CASES[] = {
    {"autoregressive", "", 12, 1},
    {"block_annealing", "width=4,tau=3", 16, 1},  /* 4 blocks of 3 steps, K = 12 */
    {"hybrid_annealing", "width=4,tau=3", 16, 1}, /* 4 blocks of 6 steps, K = 24 */
    {"simple_annealing", "width=4,tau=3", 16, 0},
    {"diffusion", "tau=16", 16, 0}, /* the default diffusion(16) */
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

typedef struct sched {
    plugin_instance *inst;
    hyper h;
    int L;
    int64_t K;
    int32_t W;
    float *tl;      /* (K + 1, L) level times, row s = step s */
    uint8_t *st;    /* (K + 1, L) states */
    int64_t *first; /* (L) first ACTIVE step (0: never) */
    int64_t active; /* active (position, step) pairs over steps 1..K */
} sched;

static sched sched_open(const scase *c) {
    sched s;
    memset(&s, 0, sizeof s);
    s.inst = make(HDLM_KIND_SCHEDULE, c->name, c->opts);
    hyper_from_plugin(&s.h, s.inst->self, s.inst->ops, c->name);
    s.L = c->L;
    s.K = hyper_n_steps(&s.h, s.L);
    s.W = hyper_n_levels(&s.h);
    s.tl = xcalloc((size_t)(s.K + 1) * s.L, sizeof *s.tl);
    s.st = xcalloc((size_t)(s.K + 1) * s.L, 1);
    s.first = xcalloc((size_t)s.L, sizeof *s.first);
    int32_t lev[L_MAX];
    for (int64_t k = 0; k <= s.K; k++) {
        int64_t ns;
        error e = {0};
        if (hyper_levels(&s.h, k, s.L, lev, &ns, &e) != HDLM_OK) {
            fprintf(stderr, "%s: %s\n", c->name, e.msg);
            exit(1);
        }
        hyper_times(lev, ns, s.L, s.W, HYPER_SAMPLING_EPS, s.tl + k * s.L, s.st + k * s.L);
        /* counted from the levels themselves: past the settled prefix and below W */
        for (int i = 0; i < s.L; i++)
            if (k >= 1 && i >= ns && lev[i] < s.W) s.active++;
    }
    for (int i = 0; i < s.L; i++)
        for (int64_t k = s.K; k >= 1; k--)
            if (s.st[k * s.L + i] == HDLM_ACTIVE) s.first[i] = k;
    return s;
}

static void sched_close(sched *s) {
    plugin_instance_destroy(s->inst);
    free(s->tl), free(s->st), free(s->first);
}

static probe_log *bound_log(plugin_instance *p) {
    return &((probe_noise_self *)p->plugin_self)->bound;
}

static int eval(model *m, const sched *s, plugin_instance *noise, int mc, int vectorised,
                const int32_t *seqs, uint64_t seed, eval_result *out) {
    eval_config cfg = {.context = MASK_CTX_BLOCK_CAUSAL,
                       .block_type = MASK_BLOCK_FULL,
                       .mc = mc,
                       .vectorised = vectorised,
                       .continuous = -1,
                       .batch = 8,
                       .seed = seed};
    error e = {0};
    int rc = eval_bound(m, &s->h, noise->self, noise->ops, &cfg, seqs, NSEQ, s->L, V, out, &e);
    if (rc != HDLM_OK) fprintf(stderr, "eval_bound: %s\n", e.msg);
    return rc;
}

/* ---- 1. closed-form bounds: exact = stratified MC, = the count of active pairs ----------------
 */

static void test_closed_form(model *m, plugin_instance *konst, plugin_instance *dt,
                             const int32_t *seqs) {
    const double c = 0.75; /* the probe's default value */
    for (int ci = 0; ci < N_CASES; ci++) {
        sched s = sched_open(&CASES[ci]);
        for (int vect = -1; vect <= 0; vect++) {
            for (int mode = 0; mode < 2; mode++) {
                plugin_instance *noise = mode ? dt : konst;
                double want = mode ? (double)s.L : c * (double)s.active;
                eval_result ex, mk, m2;
                CHECK_EQ(eval(m, &s, noise, 0, vect, seqs, 1, &ex), HDLM_OK);
                CHECK_EQ(eval(m, &s, noise, (int)s.K, vect, seqs, 2, &mk), HDLM_OK);
                CHECK_EQ(eval(m, &s, noise, (int)(2 * s.K), vect, seqs, 3, &m2), HDLM_OK);
                int want_vec = vect != 0 && CASES[ci].vectorisable;
                CHECK_EQ(ex.vectorised, want_vec);
                CHECK_EQ(mk.vectorised, want_vec);
                CHECK_EQ(ex.exact, 1);
                CHECK_EQ(mk.exact, 0);
                CHECK_EQ(ex.n_steps, s.K);
                CHECK_EQ(mk.mc, s.K);
                CHECK_EQ(ex.tokens, (int64_t)NSEQ * s.L);
                int bad = 0;
                for (int b = 0; b < NSEQ && ex.per_seq && mk.per_seq && m2.per_seq; b++) {
                    if (!rel_close(ex.per_seq[b], want, 1e-12) ||
                        !rel_close(mk.per_seq[b], want, 1e-12) ||
                        !rel_close(m2.per_seq[b], want, 1e-12)) {
                        if (!bad)
                            fprintf(stderr,
                                    "%s (%s), %s layout, bound = %s: sequence %d: mc = 0 gives "
                                    "%.15g, mc = K = %lld gives %.15g, mc = 2K gives %.15g; "
                                    "expected %.15g (%s)\n",
                                    CASES[ci].name, CASES[ci].opts,
                                    want_vec ? "vectorised" : "per-step", mode ? "t - s" : "const",
                                    b, ex.per_seq[b], (long long)s.K, mk.per_seq[b], m2.per_seq[b],
                                    want,
                                    mode ? "L: every position's times telescope from 1 to 0"
                                         : "0.75 x the active (position, step) pairs");
                        bad++;
                    }
                }
                CHECK_EQ(bad, 0);
                CHECK(rel_close(ex.nats, want / s.L, 1e-12));
                CHECK(rel_close(mk.nats, want / s.L, 1e-12));
                CHECK(ex.se >= 0 && ex.se < 1e-12); /* every sequence has the same bound */
                eval_result_free(&ex);
                eval_result_free(&mk);
                eval_result_free(&m2);
            }
        }
        sched_close(&s);
    }
}

/* ---- 2. the terms of the per-step passes: times, states, inputs ------------------------------ */

static void test_terms(model *m, plugin_instance *dt, const int32_t *seqs) {
    for (int ci = 0; ci < N_CASES; ci++) {
        sched s = sched_open(&CASES[ci]);
        probe_log *lg = bound_log(dt);
        probe_log_clear(lg);
        lg->on = 1;
        eval_result ex;
        CHECK_EQ(eval(m, &s, dt, 0, 0, seqs, 4, &ex), HDLM_OK);
        lg->on = 0;
        /* rows in order: sequence by sequence, steps 1..K, 8 rows per pass */
        int64_t row = 0, rows = 0;
        long bad_t = 0, bad_s = 0, bad_state = 0, bad_x = 0, bad_w = 0;
        for (size_t k = 0; k < lg->n; k++)
            rows += lg->calls[k].B;
        CHECK_EQ(rows, (int64_t)NSEQ * s.K);
        CHECK_EQ(ex.forwards, (NSEQ * s.K + 7) / 8);
        for (size_t k = 0; k < lg->n; k++) {
            const probe_call *c = &lg->calls[k];
            if (c->L != s.L) {
                bad_state++;
                continue;
            }
            for (int64_t r = 0; r < c->B; r++, row++) {
                int64_t b = row / s.K, st = row % s.K + 1;
                for (int i = 0; i < s.L; i++) {
                    size_t j = (size_t)r * s.L + i;
                    uint8_t ws = s.st[st * s.L + i];
                    int32_t x0 = seqs[b * s.L + i], x = c->x[j];
                    if (c->state[j] != ws) bad_state++;
                    /* settled: clean; worthless and first active: from the limit (masked);
                     * later active steps: x0 or the mask (q(x_t | x0) of the probe) */
                    if (ws == HDLM_SETTLED                         ? x != x0
                        : ws == HDLM_WORTHLESS || st == s.first[i] ? x != V
                                                                   : x != x0 && x != V)
                        bad_x++;
                    if (ws != HDLM_ACTIVE) {
                        bad_w += c->weights[j] != 0;
                        continue;
                    }
                    float wt = st == s.first[i] ? 1.0f : s.tl[st * s.L + i];
                    float wsn = st == s.K || s.st[(st + 1) * s.L + i] == HDLM_SETTLED
                                    ? 0.0f
                                    : s.tl[(st + 1) * s.L + i];
                    if (c->t[j] != wt) {
                        if (!bad_t)
                            fprintf(stderr,
                                    "%s: bound term of step %lld position %d has t = %.9g, "
                                    "expected %.9g\n",
                                    s.h.name, (long long)st, i, (double)c->t[j], (double)wt);
                        bad_t++;
                    }
                    if (c->s[j] != wsn) {
                        if (!bad_s)
                            fprintf(stderr,
                                    "%s: bound term of step %lld position %d has s = %.9g, "
                                    "expected %.9g\n",
                                    s.h.name, (long long)st, i, (double)c->s[j], (double)wsn);
                        bad_s++;
                    }
                }
            }
        }
        CHECK_EQ(bad_state, 0);
        CHECK_EQ(bad_x, 0);
        CHECK_EQ(bad_t, 0);
        CHECK_EQ(bad_s, 0);
        CHECK_EQ(bad_w, 0);
        probe_log_clear(lg);
        eval_result_free(&ex);
        sched_close(&s);
    }
}

/* ---- 3. the model's view: what the sampler's passes compute ---------------------------------- */

static double max_diff_rows(const float *a, const float *b, int n) {
    double d = 0;
    for (int v = 0; v < n; v++) {
        double x = fabs((double)a[v] - (double)b[v]);
        if (!(x <= d)) d = x;
    }
    return d;
}

/* Logits of a plain forward of one sequence (tokens x, states st), rotary positions 0..L-1 and
 * the sampler's attention rows (block-causal settled region of width w, full active block). */
static const float *sampler_forward(model *m, const int32_t *x, const uint8_t *st, int L, int w) {
    int32_t pos[L_MAX];
    attn_row rows[L_MAX];
    for (int i = 0; i < L; i++)
        pos[i] = i;
    mask_rows_from_states(rows, st, L, MASK_CTX_BLOCK_CAUSAL, w, MASK_BLOCK_FULL);
    model_batch mb = {1, L, x, pos, NULL, rows, NULL, NULL, 0};
    float *lg;
    error e = {0};
    return model_forward(m, &mb, &lg, &e) == HDLM_OK ? lg : NULL;
}

/* Every bound term's logits, in per-step passes and in the 2L layout (the noisy copy of block k
 * after the clean copy of the blocks before it), equal a forward of the same tokens and states
 * with the rows the sampling loop uses (KV cache or not, sample.c: settled-row width = the block
 * of a block-growth schedule, 1 for simple annealing, which settles token by token). Written out
 * here rather than read from hyper_mask_width, so that a change of the shared rule shows. */
static void test_logits(model *m, plugin_instance *dt, const int32_t *seqs) {
    for (int ci = 0; ci < N_CASES; ci++) {
        sched s = sched_open(&CASES[ci]);
        int64_t block = 1;
        uint32_t g = s.h.ops->growth(s.h.self, &block);
        int w = g == HDLM_GROW_BLOCKS ? (int)(block < s.L ? block : s.L) : 1, L = s.L;
        for (int vect = 0; vect <= CASES[ci].vectorisable; vect++) {
            probe_log *lg = bound_log(dt);
            probe_log_clear(lg);
            lg->on = 1;
            eval_result ex;
            CHECK_EQ(eval(m, &s, dt, 0, vect, seqs, 6, &ex), HDLM_OK);
            lg->on = 0;
            CHECK_EQ(ex.vectorised, vect);
            double worst = 0;
            long rows = 0, blocks = 0;
            for (size_t k = 0; k < lg->n; k++) {
                const probe_call *c = &lg->calls[k];
                for (int64_t r = 0; r < c->B; r++, rows++) {
                    const int32_t *x = c->x + r * c->L;
                    const uint8_t *st = c->state + r * c->L;
                    const float *lo = c->logits + r * c->L * VP;
                    if (!vect) {
                        const float *ref = sampler_forward(m, x, st, L, w);
                        for (int i = 0; i < L; i++)
                            if (st[i] == HDLM_ACTIVE)
                                worst =
                                    fmax(worst, ref ? max_diff_rows(lo + i * VP, ref + i * VP, VP)
                                                    : INFINITY);
                        continue;
                    }
                    /* 2L: block b0..b1 of the noisy copy over the clean prefix [0, b0) */
                    for (int b0 = 0; b0 < L; b0 += w) {
                        int b1 = b0 + w < L ? b0 + w : L, live = 0;
                        int32_t xs[L_MAX];
                        uint8_t ss[L_MAX];
                        for (int i = 0; i < L; i++) {
                            int noisy = i >= b0 && i < b1;
                            xs[i] = noisy ? x[L + i] : i < b0 ? x[i] : V;
                            ss[i] = noisy ? st[L + i] : i < b0 ? HDLM_SETTLED : HDLM_WORTHLESS;
                            live |= noisy && st[L + i] == HDLM_ACTIVE;
                        }
                        if (!live) continue; /* an inert block (no step left) */
                        blocks++;
                        const float *ref = sampler_forward(m, xs, ss, L, w);
                        for (int i = b0; i < b1; i++)
                            if (ss[i] == HDLM_ACTIVE)
                                worst = fmax(
                                    worst, ref ? max_diff_rows(lo + (L + i) * VP, ref + i * VP, VP)
                                               : INFINITY);
                    }
                }
            }
            if (!(worst <= 1e-4))
                fprintf(stderr,
                        "%s (%s), %s: the bound's logits differ from the sampler's forward by "
                        "%.3g\n",
                        CASES[ci].name, CASES[ci].opts, vect ? "vectorised" : "per-step", worst);
            CHECK(worst <= 1e-4);
            CHECK(rows > 0);
            CHECK(!vect || blocks >= (int64_t)NSEQ * s.K / 2); /* every (block, step) was seen */
            probe_log_clear(lg);
            eval_result_free(&ex);
        }
        sched_close(&s);
    }
}

/* ---- 4. refusals ---------------------------------------------------------------------------- */

static void test_refusals(model *m, plugin_instance *konst, const int32_t *seqs) {
    const scase sa = {"simple_annealing", "width=4,tau=3", 16, 0};
    sched s = sched_open(&sa);
    eval_result r;
    eval_config cfg = {
        .context = MASK_CTX_BLOCK_CAUSAL, .mc = 0, .vectorised = 1, .continuous = -1};
    error e = {0};
    CHECK_EQ(eval_bound(m, &s.h, konst->self, konst->ops, &cfg, seqs, NSEQ, s.L, V, &r, &e),
             HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "vectorised = true");
    sched_close(&s);
    /* continuous time has no steps to sum (the flag is the core's: the Lua layer sets it from the
     * schedule's `continuous` option) */
    const scase cont = {"diffusion", "tau=8", 16, 0};
    s = sched_open(&cont);
    cfg.vectorised = -1, cfg.continuous = 1;
    CHECK_EQ(eval_bound(m, &s.h, konst->self, konst->ops, &cfg, seqs, NSEQ, s.L, V, &r, &e),
             HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "mc = 0");
    sched_close(&s);
}

/* ---- 5. eval_summarise against hand-computed numbers ----------------------------------------- */

static void test_summarise(void) {
    double per[4] = {10, 12, 17, 9};
    eval_result r;
    memset(&r, 0, sizeof r);
    r.n_seq = 4, r.per_seq = per;
    eval_summarise(&r, 5);
    /* total 48 over 4 x 5 tokens; mean 12, deviations -2 0 5 -3: sum of squares 38, sample
     * variance 38/3, standard error of the mean sqrt(38/3/4) = 1.7795130420052185 nats per
     * sequence, per token / 5 */
    CHECK_EQ(r.tokens, 20);
    CHECK_NEAR(r.nats, 2.4, 1e-15);
    CHECK_NEAR(r.se, 0.3559026084010437, 1e-15);
    /* per-token normalisation uses the denominator given (the reference's L - 1) */
    eval_summarise(&r, 4);
    CHECK_EQ(r.tokens, 16);
    CHECK_NEAR(r.nats, 3.0, 1e-15);
    CHECK_NEAR(r.se, 0.4448782605013046, 1e-15);
    /* equal sequences: no spread */
    double same[3] = {7, 7, 7};
    r.n_seq = 3, r.per_seq = same;
    eval_summarise(&r, 7);
    CHECK_NEAR(r.nats, 1.0, 1e-15);
    CHECK_NEAR(r.se, 0.0, 0);
    /* one sequence: no standard error */
    double one[1] = {3};
    r.n_seq = 1, r.per_seq = one;
    eval_summarise(&r, 2);
    CHECK_NEAR(r.nats, 1.5, 1e-15);
    CHECK(isnan(r.se));
    /* two sequences {1, 4}: se = |4 - 1| / 2 = 1.5 per sequence */
    double two[2] = {1, 4};
    r.n_seq = 2, r.per_seq = two;
    eval_summarise(&r, 3);
    CHECK_NEAR(r.nats, 5.0 / 6.0, 1e-15);
    CHECK_NEAR(r.se, 0.5, 1e-15);
}

static const char *probe_dir(char *buf, size_t cap) {
    const char *d = getenv("HDLM_FIXTURE_DIR");
    snprintf(buf, cap, "%s/probes", d && *d ? d : "tests/plugins");
    return buf;
}

int main(void) {
    test_summarise();

    error e = {0};
    char refusals[4096] = "", dir[1024];
    CHECK_EQ(plugin_registry_open(&reg, &e), HDLM_OK);
    CHECK(plugin_registry_load_default(reg, refusals, sizeof refusals, &e) >= 0);
    if (plugin_registry_load_dir(reg, probe_dir(dir, sizeof dir), refusals, sizeof refusals, &e) <
            2 ||
        !plugin_registry_find(reg, HDLM_KIND_NOISE, "probe_noise")) {
        fprintf(stderr, "probe fixtures not found in %s: %s %s\n", dir, e.msg, refusals);
        return 1;
    }
    plugin_instance *konst = make(HDLM_KIND_NOISE, "probe_noise", "bound=const,value=0.75");
    plugin_instance *dt = make(HDLM_KIND_NOISE, "probe_noise", "bound=dt");
    model m;
    model_config mc = {
        .vocab = VP, .d_model = 32, .n_layer = 2, .n_head = 2, .seq_len = L_MAX, .mask_id = -1};
    CHECK_EQ(model_init(&m, &mc, 5, &e), HDLM_OK);
    randomize(&m, 1.5f, 5);
    int32_t seqs[NSEQ * L_MAX];
    rng r;
    rng_init(&r, 17);
    for (int j = 0; j < NSEQ * L_MAX; j++)
        seqs[j] = (int32_t)rng_below(&r, V);

    test_closed_form(&m, konst, dt, seqs);
    test_terms(&m, dt, seqs);
    test_logits(&m, dt, seqs);
    test_refusals(&m, konst, seqs);

    model_free(&m);
    plugin_instance_destroy(konst);
    plugin_instance_destroy(dt);
    plugin_registry_close(reg);
    return check_report("test_eval_core");
}
