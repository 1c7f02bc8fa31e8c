/* The sampling loop (diffusion/sample.c, sample_run) without training: a model with random
 * weights of trained-like scale (logits vary with every token and position), the five shipped
 * schedule plugins, and the probe fixtures of tests/plugins/probes (a masking noise process that
 * records what `reverse` is given, and a sampler whose trajectory does not depend on the model,
 * both loaded through the real plugin host). Checked exactly, call by call:
 *   - the times `reverse` gets: a position's first active step from t = 1 (it comes from the
 *     limit state), later steps the level time of hyper_times, s = the next step's level time or
 *     0 when the position settles next (or at the last step); the states are the schedule's;
 *   - one network evaluation per step with an active position, steps in order;
 *   - the logits the noise process and the sampler see with the KV cache on equal those with it
 *     off (<= 1e-4) at every step, for block schedules of 4 blocks, simple annealing and the
 *     autoregressive schedule, with and without σ conditioning; rows that are not active are
 *     zero in both; the uncached logits are those of a direct forward of the recorded tokens;
 *   - full context never uses the cache; a prompt block (whose steps are skipped) and infill
 *     positions are kept, and cached = uncached logits hold with them too. */
#include "base/rng.h"
#include "check.h"
#include "diffusion/hyper.h"
#include "diffusion/sample.h"
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
#define NB    2 /* samples at once */
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

/* Trained-like magnitudes (as test_model.c): matrices U(±gain/sqrt(fan_in)), vectors
 * U(±gain/sqrt(C)), LayerNorm weights 1 + U(±0.3); nothing zero (model_init zeroes the output
 * layer, which would make every logit 0). */
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

static void make_model(model *m, int cond, uint64_t seed) {
    model_config c = {.vocab = VP,
                      .d_model = 32,
                      .n_layer = 2,
                      .n_head = 2,
                      .seq_len = L_MAX,
                      .cond = cond,
                      .mask_id = cond ? V : -1,
                      .mix_gamma = cond ? 0.5f : 0.0f};
    error e = {0};
    if (model_init(m, &c, seed, &e) != HDLM_OK) {
        fprintf(stderr, "model_init: %s\n", e.msg);
        exit(1);
    }
    randomize(m, 1.5f, seed);
}

/* ---- schedules and what the loop must pass -------------------------------------------------- */

typedef struct scase {
    const char *name, *opts;
    int L;
} scase;

static const scase CASES[] = {
    {"autoregressive", "", 12},
    {"block_annealing", "width=4,tau=3", 16},  /* 4 blocks of 3 steps */
    {"hybrid_annealing", "width=4,tau=3", 16}, /* 4 blocks of 6 steps */
    {"simple_annealing", "width=4,tau=3", 16},
    {"diffusion", "tau=8", 16},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

typedef struct sched {
    plugin_instance *inst;
    hyper h;
    int L;
    int64_t K;
    int32_t W;
    int mw;         /* block_causal width: the block of HDLM_GROW_BLOCKS schedules, else 1 */
    float *tl;      /* (K + 2, L) level times of hyper_times, row s = step s */
    uint8_t *st;    /* (K + 2, L) states */
    int64_t *first; /* (L) first step at which the position is ACTIVE (0: never) */
} sched;

static sched sched_open(const scase *c) {
    sched s;
    memset(&s, 0, sizeof s);
    s.inst = make(HDLM_KIND_SCHEDULE, c->name, c->opts);
    hyper_from_plugin(&s.h, s.inst->self, s.inst->ops, c->name);
    s.L = c->L;
    s.K = hyper_n_steps(&s.h, s.L);
    s.W = hyper_n_levels(&s.h);
    int64_t block = 1;
    uint32_t g = s.h.ops->growth(s.h.self, &block);
    s.mw = g == HDLM_GROW_BLOCKS && block >= 1 ? (int)(block < s.L ? block : s.L) : 1;
    s.tl = xcalloc((size_t)(s.K + 2) * s.L, sizeof *s.tl);
    s.st = xcalloc((size_t)(s.K + 2) * s.L, 1);
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

/* The time the reverse step of step k starts position i from, and the one it ends at. */
static float want_t(const sched *s, int64_t k, int i) {
    return k == s->first[i] ? 1.0f : s->tl[k * s->L + i];
}
static float want_s(const sched *s, int64_t k, int i) {
    if (k == s->K || s->st[(k + 1) * s->L + i] == HDLM_SETTLED) return 0.0f;
    return s->tl[(k + 1) * s->L + i];
}

static int steps_with_active(const sched *s) {
    int n = 0;
    for (int64_t k = 1; k <= s->K; k++) {
        int any = 0;
        for (int i = 0; i < s->L; i++)
            any |= s->st[k * s->L + i] == HDLM_ACTIVE;
        n += any;
    }
    return n;
}

static probe_log *noise_log(plugin_instance *p) {
    return &((probe_noise_self *)p->plugin_self)->reverse;
}
static probe_log *sampler_log(plugin_instance *p) {
    return &((probe_sampler_self *)p->plugin_self)->step;
}

/* One sample_run with recording on; fixed / ftok: prompt and infill positions (NULL: none). */
static int run_fixed(model *m, const sched *s, plugin_instance *noise, plugin_instance *smp,
                     int cache, int context, uint64_t seed, const uint8_t *fixed,
                     const int32_t *ftok, sample_result *out) {
    sample_config cfg = {.B = NB,
                         .L = s->L,
                         .seed = seed,
                         .temperature = 1,
                         .top_k = 0,
                         .top_p = 1,
                         .cache = cache,
                         .context = context,
                         .block_type = MASK_BLOCK_FULL,
                         .fixed_tok = ftok,
                         .fixed = fixed};
    probe_log_clear(noise_log(noise));
    probe_log_clear(sampler_log(smp));
    noise_log(noise)->on = sampler_log(smp)->on = 1;
    error e = {0};
    int rc = sample_run(m, &s->h, noise->self, noise->ops, noise->entry->desc->name, smp->self,
                        smp->ops, smp->entry->desc->name, &cfg, out, &e);
    noise_log(noise)->on = sampler_log(smp)->on = 0;
    if (rc != HDLM_OK) fprintf(stderr, "sample_run: %s\n", e.msg);
    return rc;
}

static int run(model *m, const sched *s, plugin_instance *noise, plugin_instance *smp, int cache,
               int context, uint64_t seed, sample_result *out) {
    return run_fixed(m, s, noise, smp, cache, context, seed, NULL, NULL, out);
}

/* ---- 1. the times of the reverse step ------------------------------------------------------- */

static void test_times(model *m, plugin_instance *noise, plugin_instance *smp) {
    for (int c = 0; c < N_CASES; c++) {
        sched s = sched_open(&CASES[c]);
        for (int cache = 0; cache <= 1; cache++) {
            sample_result out;
            CHECK_EQ(run(m, &s, noise, smp, cache, MASK_CTX_BLOCK_CAUSAL, 3, &out), HDLM_OK);
            const probe_log *nl = noise_log(noise), *sl = sampler_log(smp);
            int want_calls = steps_with_active(&s);
            CHECK_EQ(out.steps, s.K);
            CHECK_EQ(out.nfe, want_calls);
            CHECK_EQ(nl->n, want_calls);
            CHECK_EQ(sl->n, want_calls);
            long bad_state = 0, bad_t = 0, bad_s = 0, bad_step = 0, seen_first = 0;
            int64_t prev = 0;
            for (size_t k = 0; k < nl->n && k < sl->n; k++) {
                const probe_call *nc = &nl->calls[k], *sc = &sl->calls[k];
                int64_t st = sc->step;
                if (st <= prev || st > s.K || nc->B != NB || nc->L != s.L) {
                    bad_step++;
                    continue;
                }
                prev = st;
                for (int b = 0; b < NB; b++)
                    for (int i = 0; i < s.L; i++) {
                        size_t j = (size_t)b * s.L + i;
                        uint8_t ws = s.st[st * s.L + i];
                        if (nc->state[j] != ws || sc->state[j] != ws) bad_state++;
                        if (ws != HDLM_ACTIVE) continue;
                        float wt = want_t(&s, st, i), wsn = want_s(&s, st, i);
                        seen_first += st == s.first[i];
                        if (nc->t[j] != wt || sc->t[j] != wt) {
                            if (!bad_t)
                                fprintf(stderr,
                                        "%s cache %d: step %lld position %d: reverse got t = %.9g, "
                                        "expected %.9g (%s)\n",
                                        s.h.name, cache, (long long)st, i, (double)nc->t[j],
                                        (double)wt,
                                        st == s.first[i] ? "first active step: from the limit, 1"
                                                         : "the level's time");
                            bad_t++;
                        }
                        if (nc->s[j] != wsn || sc->s[j] != wsn) {
                            if (!bad_s)
                                fprintf(stderr,
                                        "%s cache %d: step %lld position %d: reverse got s = %.9g, "
                                        "expected %.9g\n",
                                        s.h.name, cache, (long long)st, i, (double)nc->s[j],
                                        (double)wsn);
                            bad_s++;
                        }
                    }
            }
            if (bad_state || bad_t || bad_s || bad_step)
                fprintf(stderr, "test_times: %s (%s), cache %d\n", CASES[c].name, CASES[c].opts,
                        cache);
            CHECK_EQ(bad_step, 0);
            CHECK_EQ(bad_state, 0);
            CHECK_EQ(bad_t, 0);
            CHECK_EQ(bad_s, 0);
            CHECK_EQ(seen_first, NB * s.L); /* every position had its first active step */
            /* everything is unmasked at the end */
            int masked = 0;
            for (int j = 0; j < NB * s.L; j++)
                masked += out.tokens[j] == V;
            CHECK_EQ(masked, 0);
            sample_result_free(&out);
        }
        sched_close(&s);
    }
}

/* ---- 2. the KV cache: the same logits at every step ------------------------------------------ */

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - (double)b[i]);
        if (!(x <= d)) d = x; /* NaN propagates */
    }
    return d;
}

/* The logits of a plain forward of the recorded tokens and states (what the uncached loop must
 * have computed): rotary positions 0..L-1, rows from the states, σ from the level times of the
 * step (the sampler's record; noise ops do not see the step). */
static double direct_diff(model *m, const sched *s, int cond, const probe_call *c, int64_t step) {
    int L = s->L;
    int32_t pos[NB * L_MAX];
    attn_row rows[NB * L_MAX];
    float sigma[NB * L_MAX];
    for (int b = 0; b < NB; b++) {
        mask_rows_from_states(rows + b * L, c->state + b * L, L, MASK_CTX_BLOCK_CAUSAL, s->mw,
                              MASK_BLOCK_FULL);
        for (int i = 0; i < L; i++) {
            pos[b * L + i] = i;
            sigma[b * L + i] = (float)-log1p(-(double)s->tl[step * L + i]);
        }
    }
    model_batch mb = {NB, L, c->x, pos, cond ? sigma : NULL, rows, NULL, NULL, 0};
    float *lg;
    error e = {0};
    if (model_forward(m, &mb, &lg, &e) != HDLM_OK) return INFINITY;
    double d = 0;
    for (int j = 0; j < NB * L; j++) {
        if (c->state[j] != HDLM_ACTIVE) continue;
        double x = max_abs_diff(lg + (size_t)j * VP, c->logits + (size_t)j * VP, VP);
        if (!(x <= d)) d = x;
    }
    return d;
}

static void test_cache(model *m, plugin_instance *noise, plugin_instance *smp, int cond) {
    for (int c = 0; c < N_CASES; c++) {
        sched s = sched_open(&CASES[c]);
        sample_result on, off;
        CHECK_EQ(run(m, &s, noise, smp, 1, MASK_CTX_BLOCK_CAUSAL, 7, &on), HDLM_OK);
        probe_log a = *noise_log(noise), as = *sampler_log(smp);
        memset(noise_log(noise), 0, sizeof a); /* keep the calls; the next run starts afresh */
        memset(sampler_log(smp), 0, sizeof as);
        CHECK_EQ(run(m, &s, noise, smp, 0, MASK_CTX_BLOCK_CAUSAL, 7, &off), HDLM_OK);
        const probe_log *bl = noise_log(noise), *bs = sampler_log(smp);
        CHECK_EQ(on.cache_used, 1);
        CHECK_EQ(off.cache_used, 0);
        CHECK_EQ(a.n, bl->n);
        CHECK_EQ(on.nfe, off.nfe);
        double worst = 0, worst_sampler = 0, worst_direct = 0, spread = 0;
        long zero_rows_bad = 0;
        int64_t worst_step = 0;
        for (size_t k = 0; k < a.n && k < bl->n; k++) {
            const probe_call *x = &a.calls[k], *y = &bl->calls[k];
            size_t n = (size_t)NB * s.L * VP;
            double d = max_abs_diff(x->logits, y->logits, n);
            if (!(d <= worst)) worst = d, worst_step = as.calls[k].step;
            double ds = max_abs_diff(as.calls[k].logits, x->logits, n);
            ds = fmax(ds, max_abs_diff(bs->calls[k].logits, y->logits, n));
            if (!(ds <= worst_sampler)) worst_sampler = ds;
            double dd = direct_diff(m, &s, cond, y, bs->calls[k].step);
            if (!(dd <= worst_direct)) worst_direct = dd;
            /* rows that are not active hold zeros in both runs; active rows vary by position */
            for (int j = 0; j < NB * s.L; j++) {
                const float *r0 = x->logits + (size_t)j * VP, *r1 = y->logits + (size_t)j * VP;
                if (x->state[j] != HDLM_ACTIVE) {
                    for (int v = 0; v < VP; v++)
                        zero_rows_bad += r0[v] != 0 || r1[v] != 0;
                } else if (j > 0 && x->state[j - 1] == HDLM_ACTIVE) {
                    spread = fmax(spread, max_abs_diff(r1, r1 - VP, VP));
                }
            }
        }
        if (!(worst <= 1e-4))
            fprintf(stderr,
                    "%s (%s)%s: cached and recomputed logits differ by %.3g at step %lld (KV cache "
                    "not exact)\n",
                    CASES[c].name, CASES[c].opts, cond ? " conditioned" : "", worst,
                    (long long)worst_step);
        CHECK(worst <= 1e-4);
        CHECK(worst_sampler == 0); /* the sampler sees what reverse saw */
        if (!(worst_direct <= 1e-5))
            fprintf(stderr, "%s (%s)%s: uncached logits differ from a direct forward by %.3g\n",
                    CASES[c].name, CASES[c].opts, cond ? " conditioned" : "", worst_direct);
        CHECK(worst_direct <= 1e-5);
        CHECK_EQ(zero_rows_bad, 0);
        if (CASES[c].L > 1 && strcmp(CASES[c].name, "autoregressive"))
            CHECK(spread > 0.05); /* the model is sensitive: neighbouring rows differ */
        int same = 1;
        for (int j = 0; j < NB * s.L; j++)
            same &= on.tokens[j] == off.tokens[j];
        CHECK(same);
        probe_log_free(&a);
        probe_log_free(&as);
        sample_result_free(&on);
        sample_result_free(&off);
        sched_close(&s);
    }
}

/* ---- 3. the full-context layout recomputes (no cache), a prompt is kept --------------------- */

static void test_full_context_and_prompt(model *m, plugin_instance *noise, plugin_instance *smp) {
    sched s = sched_open(&CASES[1]); /* block_annealing */
    sample_result out;
    CHECK_EQ(run(m, &s, noise, smp, 1, MASK_CTX_FULL, 5, &out), HDLM_OK);
    CHECK_EQ(out.cache_used, 0);
    sample_result_free(&out);
    /* a prompt filling the first block (its steps have nothing to sample: no evaluation, the
     * cache catches up at the next one) and an infill inside the third block: kept, and the
     * logits with and without the cache still agree at every step */
    int32_t ftok[L_MAX] = {0};
    uint8_t fixed[L_MAX] = {0};
    for (int i = 0; i < 4; i++)
        fixed[i] = 1, ftok[i] = (int32_t)(3 + i);
    fixed[9] = fixed[10] = 1, ftok[9] = 1, ftok[10] = 2;
    sample_result on, off;
    CHECK_EQ(run_fixed(m, &s, noise, smp, 1, MASK_CTX_BLOCK_CAUSAL, 9, fixed, ftok, &on), HDLM_OK);
    probe_log a = *noise_log(noise);
    memset(noise_log(noise), 0, sizeof a);
    CHECK_EQ(sampler_log(smp)->n > 0 ? sampler_log(smp)->calls[0].step : -1, 4);
    CHECK_EQ(run_fixed(m, &s, noise, smp, 0, MASK_CTX_BLOCK_CAUSAL, 9, fixed, ftok, &off), HDLM_OK);
    CHECK_EQ(on.cache_used, 1);
    CHECK_EQ(on.nfe, s.K - 3); /* block 0's 3 steps are skipped */
    CHECK_EQ(off.nfe, on.nfe);
    CHECK_EQ(a.n, noise_log(noise)->n);
    double worst = 0;
    for (size_t k = 0; k < a.n && k < noise_log(noise)->n; k++)
        worst = fmax(worst, max_abs_diff(a.calls[k].logits, noise_log(noise)->calls[k].logits,
                                         (size_t)NB * s.L * VP));
    CHECK(worst <= 1e-4);
    int kept = 1, same = 1;
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < s.L; i++) {
            if (fixed[i]) kept &= on.tokens[b * s.L + i] == ftok[i];
            same &= on.tokens[b * s.L + i] == off.tokens[b * s.L + i];
        }
    CHECK(kept);
    CHECK(same);
    probe_log_free(&a);
    sample_result_free(&on);
    sample_result_free(&off);
    sched_close(&s);
}

static const char *probe_dir(char *buf, size_t cap) {
    const char *d = getenv("HDLM_FIXTURE_DIR");
    snprintf(buf, cap, "%s/probes", d && *d ? d : "tests/plugins");
    return buf;
}

int main(void) {
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
    plugin_instance *noise = make(HDLM_KIND_NOISE, "probe_noise", "");
    plugin_instance *noise_c = make(HDLM_KIND_NOISE, "probe_noise_cond", "");
    plugin_instance *smp = make(HDLM_KIND_SAMPLER, "probe_sampler", "");
    model m, mc;
    make_model(&m, 0, 41);
    make_model(&mc, 1, 42);

    test_times(&m, noise, smp);
    test_cache(&m, noise, smp, 0);
    test_cache(&mc, noise_c, smp, 1);
    test_full_context_and_prompt(&m, noise, smp);

    model_free(&m);
    model_free(&mc);
    plugin_instance_destroy(noise);
    plugin_instance_destroy(noise_c);
    plugin_instance_destroy(smp);
    plugin_registry_close(reg);
    return check_report("test_sample_loop");
}
