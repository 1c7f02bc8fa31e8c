/* Sampler plugins ancestral, acs, remask, confidence and analytic, loaded from the build's plugin
 * folder and driven through step() with hand-built contexts (the test supplies draw = inverse CDF
 * at temperature 1 on the same rng, and an event recorder): the spec §6.2 worked example setting
 * (unmask and token frequencies over 50k repetitions, the documented number of random draws),
 * acs(η = 0) = ancestral token for token over whole generations, acs correction rates, ReMDM
 * remasking probabilities, confidence ordering with k / fraction / ties / must-denoise,
 * analytic row draws, and for every sampler: fixed / settled / worthless positions never change
 * and the events replay exactly the changes. Reverse rows come from the real absorbing plugin or
 * are written by hand (γ-like rows with mass off the current token). */
#include "base/rng.h"
#include "check.h"
#include "plugin/host.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static plugin_registry *reg;

/* ---- the test's core: draw + event recorder ------------------------------------------------ */

typedef struct event_rec {
    int64_t b, i;
    int32_t old_tok, new_tok;
    double p;
    int kind;
} event_rec;

typedef struct tcore {
    rng *r;
    event_rec *ev; /* (cap) */
    size_t n, cap;
    long draws;
} tcore;

/* Inverse-CDF categorical draw from unnormalised weights, one uniform per call. */
static int32_t t_draw(void *core, const double *w, int32_t n) {
    tcore *c = core;
    double tot = 0, acc = 0;
    for (int32_t v = 0; v < n; v++)
        tot += w[v];
    const double u = rng_uniform(c->r) * tot;
    int32_t last = -1;
    c->draws++;
    for (int32_t v = 0; v < n; v++) {
        if (!(w[v] > 0)) continue;
        acc += w[v];
        last = v;
        if (u < acc) return v;
    }
    return last;
}

static void t_event(void *core, int64_t b, int64_t i, int32_t old_tok, int32_t new_tok, double p,
                    int kind) {
    tcore *c = core;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->ev = realloc(c->ev, c->cap * sizeof *c->ev);
        if (!c->ev) abort();
    }
    c->ev[c->n++] = (event_rec){b, i, old_tok, new_tok, p, kind};
}

/* ---- fixture: one batch and its sampler ctx ------------------------------------------------- */

typedef struct fixture {
    int64_t B, L;
    int32_t V, Vp, M;
    int32_t *x, *before; /* (B, L) */
    uint8_t *state, *fixed;
    float *t_now, *t_next;
    float *logits; /* (B, L, Vp) */
    double *probs; /* (B, L, Vp) */
    rng r;
    tcore core;
    hdlm_sampler_ctx ctx;
} fixture;

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) abort();
    return p;
}

static fixture *fx_new(int64_t B, int64_t L, int32_t V, int32_t Vp, int32_t M) {
    fixture *f = xcalloc(1, sizeof *f);
    const size_t n = (size_t)(B * L);
    f->B = B, f->L = L, f->V = V, f->Vp = Vp, f->M = M;
    f->x = xcalloc(n, sizeof(int32_t));
    f->before = xcalloc(n, sizeof(int32_t));
    f->state = xcalloc(n, 1);
    f->fixed = xcalloc(n, 1);
    f->t_now = xcalloc(n, sizeof(float));
    f->t_next = xcalloc(n, sizeof(float));
    f->logits = xcalloc(n * (size_t)Vp, sizeof(float));
    f->probs = xcalloc(n * (size_t)Vp, sizeof(double));
    for (size_t j = 0; j < n; j++)
        f->state[j] = HDLM_ACTIVE;
    rng_init(&f->r, 1);
    f->core.r = &f->r;
    hdlm_sampler_ctx *c = &f->ctx;
    c->struct_size = sizeof *c;
    c->B = B, c->L = L, c->V = V, c->Vp = Vp, c->mask_id = M;
    c->step = 1, c->n_steps = 1;
    c->x = f->x, c->state = f->state, c->fixed = f->fixed;
    c->t_now = f->t_now, c->t_next = f->t_next;
    c->logits = f->logits, c->probs = f->probs;
    c->rng = &f->r, c->core = &f->core;
    c->draw = t_draw, c->event = t_event;
    return f;
}

static void fx_free(fixture *f) {
    if (!f) return;
    free(f->x), free(f->before), free(f->state), free(f->fixed), free(f->t_now);
    free(f->t_next), free(f->logits), free(f->probs), free(f->core.ev), free(f);
}

/* ---- plugins ------------------------------------------------------------------------------ */

/* A sampler instance; kv = "key=value" texts, NULL-terminated (NULL for defaults). */
static plugin_instance *make_sampler(const char *name, const char *const *kv) {
    plugin_opts *o = plugin_opts_new();
    for (; kv && *kv; kv++) {
        char key[64];
        const char *eq = strchr(*kv, '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - *kv), *kv);
        plugin_opts_set_text(o, key, eq + 1);
    }
    plugin_instance *p = NULL;
    error e = {0};
    if (plugin_instance_create(reg, HDLM_KIND_SAMPLER, name, o, NULL, &p, &e) != HDLM_OK) {
        fprintf(stderr, "cannot make sampler %s: %s\n", name, e.msg);
        exit(1);
    }
    return p;
}

static int step(plugin_instance *p, fixture *f, char *err, size_t cap) {
    const hdlm_sampler_ops *ops = p->ops;
    memcpy(f->before, f->x, sizeof(int32_t) * (size_t)(f->B * f->L));
    f->core.n = 0;
    f->core.draws = 0;
    err[0] = '\0';
    return ops->step(p->self, &f->ctx, err, cap);
}

/* Fills f->probs with the real absorbing plugin's reverse rows (x, t_now -> t_next, logits). */
static void absorbing_rows(fixture *f) {
    plugin_opts *o = plugin_opts_new();
    plugin_opts_set_number(o, "vocab", f->V);
    plugin_instance *p = NULL;
    error e = {0};
    if (plugin_instance_create(reg, HDLM_KIND_NOISE, "absorbing", o, NULL, &p, &e) != HDLM_OK) {
        fprintf(stderr, "cannot make absorbing: %s\n", e.msg);
        exit(1);
    }
    hdlm_noise_batch b;
    memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    b.B = f->B, b.L = f->L, b.V = f->V, b.Vp = f->Vp, b.block = f->L, b.annealed = 1;
    b.xt = f->x, b.t = f->t_now, b.s = f->t_next, b.state = f->state;
    b.logits = f->logits, b.probs = f->probs;
    char err[256] = "";
    const hdlm_noise_ops *ops = p->ops;
    int rc = ops->reverse(p->self, &b, err, sizeof err);
    if (rc) {
        fprintf(stderr, "absorbing reverse: %s\n", err);
        exit(1);
    }
    plugin_instance_destroy(p);
}

/* softmax of the V real logits of position j */
static void softmax_real(const fixture *f, int64_t j, double *out) {
    const float *lg = f->logits + j * f->Vp;
    double mx = lg[0], z = 0;
    for (int32_t v = 1; v < f->V; v++)
        mx = lg[v] > mx ? lg[v] : mx;
    for (int32_t v = 0; v < f->V; v++)
        z += out[v] = exp(lg[v] - mx);
    for (int32_t v = 0; v < f->V; v++)
        out[v] /= z;
}

/* The events replay before -> x exactly, with consistent kinds and p in (0, 1], and nothing
 * changed at fixed or non-ACTIVE positions. Returns 1 when all holds. */
static int events_consistent(const fixture *f) {
    const size_t n = (size_t)(f->B * f->L);
    int32_t *y = xcalloc(n, sizeof *y);
    memcpy(y, f->before, n * sizeof *y);
    int ok = 1;
    for (size_t k = 0; k < f->core.n; k++) {
        const event_rec *e = &f->core.ev[k];
        if (e->b < 0 || e->b >= f->B || e->i < 0 || e->i >= f->L) {
            ok = 0;
            continue;
        }
        const int64_t j = e->b * f->L + e->i;
        int kind = e->old_tok == f->M   ? HDLM_EVENT_UNMASK
                   : e->new_tok == f->M ? HDLM_EVENT_REMASK
                                        : HDLM_EVENT_CORRECT;
        if (y[j] != e->old_tok || e->old_tok == e->new_tok || kind != e->kind || !(e->p > 0) ||
            !(e->p <= 1 + 1e-12))
            ok = 0;
        y[j] = e->new_tok;
    }
    for (size_t j = 0; j < n; j++) {
        if (y[j] != f->x[j]) ok = 0;
        if ((f->fixed[j] || f->state[j] != HDLM_ACTIVE) && f->x[j] != f->before[j]) ok = 0;
    }
    free(y);
    return ok;
}

/* ---- the spec §6.2 worked example setting ------------------------------------------------- */

/* 6 positions x = (M,1,M,3,M,0), V = 5, M = 5, t = 0.75, s = 0.5 (p_tr = 1/3), fixed logits
 * (the reference's tokens come from its own RNG and cannot be reproduced, only the law). */
static const float EX_LOGITS[6][6] = {
    {1.0f, 0.5f, -0.3f, 2.0f, 0.1f, 0.7f}, {0.2f, -40.0f, 1.5f, 0.0f, 0.4f, 0.0f},
    {-1.0f, 0.0f, 1.0f, 0.5f, 2.5f, 3.0f}, {1.2f, 0.3f, 0.3f, -40.0f, 0.9f, 0.0f},
    {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -2.0f}, {-40.0f, 1.0f, 0.6f, 0.1f, 0.8f, 0.0f},
};
/* (the visible positions' own tokens get logit -40: an ACS resample always moves them) */
static const int32_t EX_X[6] = {5, 1, 5, 3, 5, 0};

static fixture *example(double t, double s) {
    fixture *f = fx_new(1, 6, 5, 6, 5);
    for (int j = 0; j < 6; j++) {
        f->x[j] = EX_X[j];
        f->t_now[j] = (float)t;
        f->t_next[j] = (float)s;
        memcpy(f->logits + j * 6, EX_LOGITS[j], sizeof EX_LOGITS[j]);
    }
    absorbing_rows(f);
    return f;
}

static void example_reset(fixture *f) {
    memcpy(f->x, EX_X, sizeof EX_X);
}

/* |freq - p| <= 4σ (binomial) + 1e-9 */
static int within_4sigma(long hits, long n, double p) {
    if (n == 0) return p == 0;
    const double fr = (double)hits / (double)n;
    return fabs(fr - p) <= 4 * sqrt(p * (1 - p) / (double)n) + 1e-9;
}

/* Over N repetitions of one step on the example: unmask rate of every masked position, token
 * frequencies against the softmax, visible positions never changed (ancestral, acs(η = 0)). */
static void test_example_unmask(const char *name, const char *const *kv) {
    enum { N = 50000 };
    plugin_instance *p = make_sampler(name, kv);
    fixture *f = example(0.75, 0.5);
    long unmask[6] = {0}, tok[6][5] = {{0}};
    int bad_events = 0, bad_draw_count = 0, changed_visible = 0;
    char err[256];
    CHECK_NEAR(f->probs[0 * 6 + 5], 2.0 / 3.0, 1e-7); /* the row: p(stay M) = s/t */
    for (int r = 0; r < N; r++) {
        example_reset(f);
        rng_init(&f->r, 1000 + (uint64_t)r);
        rng before = f->r;
        if (step(p, f, err, sizeof err) != HDLM_OK) {
            fprintf(stderr, "%s: %s\n", name, err);
            CHECK(0);
            break;
        }
        bad_events += !events_consistent(f);
        /* documented draw order: one uniform per masked position + one per unmask */
        long n_unmask = 0;
        for (int j = 0; j < 6; j++) {
            if (EX_X[j] != 5) {
                changed_visible += f->x[j] != EX_X[j];
                continue;
            }
            if (f->x[j] != 5) {
                unmask[j]++;
                tok[j][f->x[j]]++;
                n_unmask++;
            }
        }
        for (long k = 0; k < 3 + n_unmask; k++)
            rng_u64(&before);
        bad_draw_count += memcmp(&before, &f->r, sizeof before) != 0 || f->core.draws != n_unmask;
    }
    CHECK_EQ(bad_events, 0);
    CHECK_EQ(bad_draw_count, 0);
    CHECK_EQ(changed_visible, 0);
    for (int j = 0; j < 6; j += 2) {
        CHECK(within_4sigma(unmask[j], N, 1.0 / 3.0));
        double sm[5];
        softmax_real(f, j, sm);
        for (int v = 0; v < 5; v++)
            CHECK(within_4sigma(tok[j][v], unmask[j], sm[v]));
    }
    fx_free(f);
    plugin_instance_destroy(p);
}

/* The last step (s = 0): every masked position is unmasked, by every masked-process sampler. */
static void test_example_last_step(void) {
    const char *names[] = {"ancestral", "acs", "remask", "confidence", "analytic"};
    for (int k = 0; k < 5; k++) {
        plugin_instance *p = make_sampler(names[k], NULL);
        fixture *f = example(0.25, 0.0);
        CHECK_NEAR(f->probs[0 * 6 + 5], 0.0, 0);
        for (int r = 0; r < 200; r++) {
            char err[256];
            example_reset(f);
            rng_init(&f->r, 7 + (uint64_t)r);
            CHECK_EQ(step(p, f, err, sizeof err), HDLM_OK);
            int masked = 0, visible_changed = 0;
            for (int j = 0; j < 6; j++) {
                masked += f->x[j] == 5;
                visible_changed += EX_X[j] != 5 && f->x[j] != EX_X[j];
            }
            if (masked || visible_changed || !events_consistent(f)) {
                fprintf(stderr, "%s: last step left %d masks, changed %d visible\n", names[k],
                        masked, visible_changed);
                CHECK(0);
                break;
            }
        }
        /* t_next = 0 decides, even against a row that still gives the mask weight (all but
         * analytic, which draws from the row as the process built it) */
        if (k < 4) {
            example_reset(f);
            for (int j = 0; j < 6; j += 2)
                f->probs[j * 6 + 5] = 0.9;
            char err[256];
            CHECK_EQ(step(p, f, err, sizeof err), HDLM_OK);
            CHECK_EQ(f->x[0] != 5 && f->x[2] != 5 && f->x[4] != 5, 1);
        }
        fx_free(f);
        plugin_instance_destroy(p);
    }
}

/* ---- random batches ----------------------------------------------------------------------- */

/* Random states (20% settled, 10% worthless), 20% fixed, 40% masked, random logits; t_now in
 * (0.1, 1], t_next = 0 for 15% of positions, else in (0, t_now). */
static void fill_random(fixture *f, rng *g) {
    for (int64_t j = 0; j < f->B * f->L; j++) {
        double u = rng_uniform(g);
        f->state[j] = u < 0.2 ? HDLM_SETTLED : u < 0.3 ? HDLM_WORTHLESS : HDLM_ACTIVE;
        f->fixed[j] = rng_uniform(g) < 0.2;
        f->x[j] = f->M >= 0 && rng_uniform(g) < 0.4 ? f->M : (int32_t)rng_below(g, f->V);
        f->t_now[j] = (float)(0.1 + 0.9 * rng_uniform(g));
        f->t_next[j] = rng_uniform(g) < 0.15 ? 0.0f : (float)(f->t_now[j] * rng_uniform(g));
        for (int32_t v = 0; v < f->Vp; v++)
            f->logits[j * f->Vp + v] = (float)(3 * rng_normal(g));
    }
}

/* γ-like rows: masked rows as absorbing; visible rows 0.8 on x + 0.2·softmax (error correction);
 * maskless processes: every row 0.6 on x + 0.4·softmax. */
static void gamma_like_rows(fixture *f) {
    double sm[64];
    for (int64_t j = 0; j < f->B * f->L; j++) {
        double *row = f->probs + j * f->Vp;
        softmax_real(f, j, sm);
        for (int32_t v = 0; v < f->Vp; v++)
            row[v] = 0;
        if (f->M >= 0 && f->x[j] == f->M) {
            const double keep = f->t_next[j] / f->t_now[j];
            for (int32_t v = 0; v < f->V; v++)
                row[v] = (1 - keep) * sm[v];
            row[f->M] = keep;
            continue;
        }
        const double stay = f->M >= 0 ? 0.8 : 0.6;
        for (int32_t v = 0; v < f->V; v++)
            row[v] = (1 - stay) * sm[v];
        row[f->x[j]] += stay;
    }
}

/* Every sampler, many random batches (absorbing rows and γ-like rows): fixed and non-ACTIVE
 * positions never change, the events replay the changes exactly, nothing is left masked where it
 * had to be fully denoised. */
static void test_invariants(void) {
    const char *names[] = {"ancestral", "acs", "remask", "confidence", "analytic"};
    const char *const acs_kv[] = {"eta=0.5", NULL};
    const char *const rm_kv[] = {"eta=0.5", NULL};
    const char *const cf_kv[] = {"k=3", NULL};
    const char *const *kvs[] = {NULL, acs_kv, rm_kv, cf_kv, NULL};
    for (int k = 0; k < 5; k++) {
        plugin_instance *p = make_sampler(names[k], kvs[k]);
        fixture *f = fx_new(3, 20, 7, 8, 7);
        rng g;
        rng_init(&g, 99 + (uint64_t)k);
        int bad = 0, undone = 0, fails = 0;
        long events = 0;
        for (int r = 0; r < 300; r++) {
            char err[256];
            fill_random(f, &g);
            if (r % 2)
                gamma_like_rows(f);
            else
                absorbing_rows(f);
            rng_init(&f->r, (uint64_t)r);
            if (step(p, f, err, sizeof err) != HDLM_OK) {
                fprintf(stderr, "%s: %s\n", names[k], err);
                fails++;
                continue;
            }
            bad += !events_consistent(f);
            events += (long)f->core.n;
            for (int64_t j = 0; j < f->B * f->L; j++)
                undone += f->state[j] == HDLM_ACTIVE && !f->fixed[j] && f->t_next[j] == 0 &&
                          f->x[j] == f->M;
        }
        CHECK_EQ(fails, 0);
        CHECK_EQ(bad, 0);
        CHECK_EQ(undone, 0);
        CHECK(events > 1000); /* the invariants were exercised */
        fx_free(f);
        plugin_instance_destroy(p);
    }
}

/* acs with η = 0 equals ancestral token for token (and event for event) over whole generations:
 * 100 seeds, 5 steps from t = 1 to 0 with fresh logits per step, absorbing and γ-like rows. */
static void run_generation(plugin_instance *p, fixture *f, uint64_t seed, int gamma_rows,
                           event_rec *log, size_t *n_log, size_t cap) {
    rng g;
    rng_init(&g, seed ^ 0xabcdef);
    rng_init(&f->r, seed);
    const int n_steps = 5;
    for (int64_t j = 0; j < f->B * f->L; j++) {
        f->state[j] = HDLM_ACTIVE;
        f->fixed[j] = j % 7 == 3;
        f->x[j] = f->fixed[j] ? (int32_t)(j % f->V) : f->M;
    }
    *n_log = 0;
    for (int s = 0; s < n_steps; s++) {
        const float t = (float)(1.0 - (double)s / n_steps);
        const float tn = (float)(1.0 - (double)(s + 1) / n_steps);
        for (int64_t j = 0; j < f->B * f->L; j++) {
            f->t_now[j] = t;
            f->t_next[j] = s == n_steps - 1 ? 0.0f : tn;
            for (int32_t v = 0; v < f->Vp; v++)
                f->logits[j * f->Vp + v] = (float)(2 * rng_normal(&g));
        }
        if (gamma_rows)
            gamma_like_rows(f);
        else
            absorbing_rows(f);
        char err[256];
        int rc = step(p, f, err, sizeof err);
        CHECK_EQ(rc, HDLM_OK);
        for (size_t k = 0; k < f->core.n && *n_log < cap; k++)
            log[(*n_log)++] = f->core.ev[k];
    }
}

static void test_acs_eta0_is_ancestral(void) {
    const char *const kv[] = {"eta=0", NULL};
    plugin_instance *an = make_sampler("ancestral", NULL), *ac = make_sampler("acs", kv);
    fixture *fa = fx_new(2, 16, 6, 7, 6), *fc = fx_new(2, 16, 6, 7, 6);
    enum { CAP = 4096 };
    event_rec *la = xcalloc(CAP, sizeof *la), *lc = xcalloc(CAP, sizeof *lc);
    int differ = 0, ev_differ = 0, left_masked = 0;
    long corrections = 0;
    for (uint64_t seed = 1; seed <= 100; seed++) {
        size_t na = 0, nc = 0;
        int gamma_rows = seed % 2 == 0;
        run_generation(an, fa, seed, gamma_rows, la, &na, CAP);
        run_generation(ac, fc, seed, gamma_rows, lc, &nc, CAP);
        differ += memcmp(fa->x, fc->x, sizeof(int32_t) * 32) != 0 ||
                  memcmp(&fa->r, &fc->r, sizeof fa->r) != 0;
        ev_differ += na != nc;
        for (size_t k = 0; k < na && k < nc; k++)
            ev_differ += la[k].b != lc[k].b || la[k].i != lc[k].i ||
                         la[k].old_tok != lc[k].old_tok || la[k].new_tok != lc[k].new_tok ||
                         la[k].p != lc[k].p || la[k].kind != lc[k].kind;
        for (int j = 0; j < 32; j++)
            left_masked += fa->x[j] == 6;
        for (size_t k = 0; k < na; k++)
            corrections += la[k].kind == HDLM_EVENT_CORRECT;
    }
    CHECK_EQ(differ, 0);
    CHECK_EQ(ev_differ, 0);
    CHECK_EQ(left_masked, 0);
    CHECK(corrections > 0); /* γ-like rows made ancestral correct visible tokens */
    free(la), free(lc);
    fx_free(fa), fx_free(fc);
    plugin_instance_destroy(an), plugin_instance_destroy(ac);
}

/* acs with η > 0 on the example: each visible position is corrected with probability η·s/t (the
 * current token has logit far below the others, so a resample always changes it), to tokens
 * following the softmax; the unmask rate stays 1/3; the last step corrects nothing. */
static void test_acs_corrections(void) {
    enum { N = 50000 };
    const char *const kv[] = {"eta=0.3", NULL};
    plugin_instance *p = make_sampler("acs", kv);
    fixture *f = example(0.75, 0.5);
    const double rate = 0.3 * 0.5 / 0.75;
    long corr[6] = {0}, tok[6][5] = {{0}}, unmask[6] = {0};
    int bad = 0, bad_count = 0;
    for (int r = 0; r < N; r++) {
        char err[256];
        example_reset(f);
        rng_init(&f->r, 5000 + (uint64_t)r);
        rng before = f->r;
        if (step(p, f, err, sizeof err) != HDLM_OK) {
            fprintf(stderr, "acs: %s\n", err);
            bad++;
            break;
        }
        bad += !events_consistent(f);
        long n_events = (long)f->core.n;
        for (int j = 0; j < 6; j++) {
            if (EX_X[j] == 5) {
                unmask[j] += f->x[j] != 5;
            } else if (f->x[j] != EX_X[j]) {
                corr[j]++;
                tok[j][f->x[j]]++;
            }
        }
        /* 3 unmask uniforms + 3 correction uniforms + one draw per event (every resample
         * changes the token here) */
        for (long k = 0; k < 6 + n_events; k++)
            rng_u64(&before);
        bad_count += memcmp(&before, &f->r, sizeof before) != 0;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(bad_count, 0);
    for (int j = 0; j < 6; j++) {
        if (EX_X[j] == 5) {
            CHECK(within_4sigma(unmask[j], N, 1.0 / 3.0));
            continue;
        }
        CHECK(within_4sigma(corr[j], N, rate));
        double sm[5];
        softmax_real(f, j, sm);
        for (int v = 0; v < 5; v++)
            if (v != EX_X[j]) CHECK(within_4sigma(tok[j][v], corr[j], sm[v] / (1 - sm[EX_X[j]])));
    }
    fx_free(f);

    /* last step: η·0/t = 0 */
    f = example(0.25, 0.0);
    int changed = 0;
    for (int r = 0; r < 500; r++) {
        char err[256];
        example_reset(f);
        rng_init(&f->r, 77 + (uint64_t)r);
        CHECK_EQ(step(p, f, err, sizeof err), HDLM_OK);
        for (int j = 0; j < 6; j++)
            changed += EX_X[j] != 5 && f->x[j] != EX_X[j];
    }
    CHECK_EQ(changed, 0);
    fx_free(f);
    plugin_instance_destroy(p);

    /* options */
    plugin_opts *o = plugin_opts_new();
    plugin_opts_set_number(o, "eta", 1.5);
    plugin_instance *q = NULL;
    error e = {0};
    CHECK(plugin_instance_create(reg, HDLM_KIND_SAMPLER, "acs", o, NULL, &q, &e) < 0);
    CHECK_CONTAINS(e.msg, "option 'eta' must be in [0, 1], got 1.5");
}

/* ---- remask ------------------------------------------------------------------------------- */

static void test_remask(void) {
    char err[256];
    /* refuses a maskless process */
    {
        plugin_instance *p = make_sampler("remask", NULL);
        fixture *f = fx_new(1, 4, 5, 5, -1);
        gamma_like_rows(f);
        for (int j = 0; j < 4; j++)
            f->t_now[j] = 0.5f, f->t_next[j] = 0.25f;
        CHECK_EQ(step(p, f, err, sizeof err), HDLM_EINVAL);
        CHECK_CONTAINS(err, "remask needs a process with a mask symbol");
        CHECK_EQ(f->core.n, 0);
        fx_free(f);
        plugin_instance_destroy(p);
    }
    /* t = 0.3, s = 0.2: α_t = 0.7, α_s = 0.8, σ_max = 0.2/0.7.
     * cap η = 0.1 → σ = 0.1; rescale η = 0.5 → σ = 0.5·σ_max; cap η = 0 → σ = 0 (MDLM). */
    const double t = 0.3f, s = 0.2f; /* the float times the ctx carries */
    const double smax = (1 - (1 - s)) / (1 - t);
    struct {
        const char *kv[3];
        double sigma;
    } cases[] = {{{"eta=0.1", "rule=cap", NULL}, 0.1},
                 {{"eta=0.5", "rule=rescale", NULL}, 0.5 * smax},
                 {{"eta=0.9", "rule=cap", NULL}, smax},
                 {{"eta=0", NULL, NULL}, 0.0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        enum { N = 40000 };
        plugin_instance *p = make_sampler("remask", cases[c].kv);
        fixture *f = example(0.3, 0.2);
        const double sigma = cases[c].sigma;
        const double p_u = (t - s + sigma * (1 - t)) / t;
        long remasked[6] = {0}, unmask[6] = {0}, tok[6][5] = {{0}};
        int bad = 0, bad_count = 0;
        for (int r = 0; r < N; r++) {
            example_reset(f);
            rng_init(&f->r, 3 + (uint64_t)r);
            rng before = f->r;
            if (step(p, f, err, sizeof err) != HDLM_OK) {
                fprintf(stderr, "remask: %s\n", err);
                CHECK(0);
                break;
            }
            bad += !events_consistent(f);
            long n_unmask = 0;
            for (int j = 0; j < 6; j++) {
                if (EX_X[j] == 5 && f->x[j] != 5) {
                    unmask[j]++;
                    tok[j][f->x[j]]++;
                    n_unmask++;
                }
                remasked[j] += EX_X[j] != 5 && f->x[j] == 5;
                bad += EX_X[j] != 5 && f->x[j] != 5 && f->x[j] != EX_X[j]; /* no corrections */
            }
            for (size_t k = 0; k < f->core.n; k++)
                if (f->core.ev[k].kind == HDLM_EVENT_REMASK)
                    bad += fabs(f->core.ev[k].p - sigma) > 1e-12;
            for (long k = 0; k < 6 + n_unmask; k++) /* one uniform per position + draws */
                rng_u64(&before);
            bad_count += memcmp(&before, &f->r, sizeof before) != 0;
        }
        CHECK_EQ(bad, 0);
        CHECK_EQ(bad_count, 0);
        for (int j = 0; j < 6; j++) {
            if (EX_X[j] != 5) {
                CHECK(within_4sigma(remasked[j], N, sigma));
                continue;
            }
            CHECK(within_4sigma(unmask[j], N, p_u));
            double sm[5];
            softmax_real(f, j, sm);
            for (int v = 0; v < 5; v++)
                CHECK(within_4sigma(tok[j][v], unmask[j], sm[v]));
        }
        fx_free(f);

        /* must be fully denoised (s = 0): all unmasked, nothing remasked */
        f = example(0.3, 0.0);
        int left = 0;
        for (int r = 0; r < 300; r++) {
            example_reset(f);
            rng_init(&f->r, 11 + (uint64_t)r);
            CHECK_EQ(step(p, f, err, sizeof err), HDLM_OK);
            for (int j = 0; j < 6; j++)
                left += f->x[j] == 5;
        }
        CHECK_EQ(left, 0);
        fx_free(f);
        plugin_instance_destroy(p);
    }
    plugin_opts *o = plugin_opts_new();
    plugin_opts_set_string(o, "rule", "loop");
    plugin_instance *q = NULL;
    error e = {0};
    CHECK(plugin_instance_create(reg, HDLM_KIND_SAMPLER, "remask", o, NULL, &q, &e) < 0);
    CHECK_CONTAINS(e.msg, "rule");
}

/* remask asks the core for α(t) (the noise process's probability of not being masked): with the
 * γ log-linear α(t) = e^{−(1−γ)σ(t)}, σ(t) = −log(1 − 0.995 t), the remasking and unmasking
 * chances follow that α, not 1 − t. */
static double alpha_gamma(void *core, double t) {
    (void)core;
    return exp(0.5 * log1p(-0.995 * t)); /* γ = 0.5: far from 1 − t */
}

static void test_remask_alpha(void) {
    enum { N = 40000 };
    char err[256];
    const char *kv[] = {"eta=0.1", "rule=cap", NULL};
    plugin_instance *p = make_sampler("remask", kv);
    fixture *f = example(0.3, 0.2);
    f->ctx.alpha = alpha_gamma;
    const double at = alpha_gamma(NULL, 0.3f), as = alpha_gamma(NULL, 0.2f);
    double sigma = (1 - as) / at;
    if (sigma > 0.1) sigma = 0.1;
    const double p_u = (as - (1 - sigma) * at) / (1 - at);
    CHECK(fabs(p_u - (0.3 - 0.2 + sigma * 0.7) / 0.3) > 0.01); /* differs from the linear α */
    long remasked[6] = {0}, unmask[6] = {0};
    int bad = 0;
    for (int r = 0; r < N; r++) {
        example_reset(f);
        rng_init(&f->r, 5 + (uint64_t)r);
        CHECK_EQ(step(p, f, err, sizeof err), HDLM_OK);
        for (int j = 0; j < 6; j++) {
            unmask[j] += EX_X[j] == 5 && f->x[j] != 5;
            remasked[j] += EX_X[j] != 5 && f->x[j] == 5;
        }
        for (size_t k = 0; k < f->core.n; k++)
            if (f->core.ev[k].kind == HDLM_EVENT_REMASK)
                bad += fabs(f->core.ev[k].p - sigma) > 1e-12;
    }
    CHECK_EQ(bad, 0);
    for (int j = 0; j < 6; j++)
        CHECK(within_4sigma(EX_X[j] == 5 ? unmask[j] : remasked[j], N, EX_X[j] == 5 ? p_u : sigma));
    fx_free(f);
    plugin_instance_destroy(p);
}

/* ---- confidence --------------------------------------------------------------------------- */

/* 10 masked positions whose confidence (max softmax over 4 real tokens) is set by one peak
 * logit; position i gets peak PEAK[i]. Ranking by confidence: 7, 2, 9, 4 = 5 (tie), 0, 8, 1, 6, 3.
 * Position 8 is fixed in some cases. */
static const float PEAK[10] = {2.0f, 0.5f, 5.0f, 0.1f, 3.0f, 3.0f, 0.3f, 6.0f, 1.0f, 4.0f};

static fixture *conf_fixture(double t, double s) {
    fixture *f = fx_new(1, 12, 4, 5, 4);
    for (int j = 0; j < 12; j++) {
        f->x[j] = j < 10 ? 4 : 1; /* 10, 11 visible */
        f->t_now[j] = (float)t;
        f->t_next[j] = (float)s;
        for (int v = 0; v < 5; v++)
            f->logits[j * 5 + v] = 0;
        if (j < 10) f->logits[j * 5 + (j % 4)] = PEAK[j];
    }
    absorbing_rows(f);
    return f;
}

/* which of the first 10 positions were unmasked, as a bit set */
static unsigned unmasked_set(const fixture *f) {
    unsigned s = 0;
    for (int j = 0; j < 10; j++)
        if (f->x[j] != 4) s |= 1u << j;
    return s;
}

static unsigned bits(const int *pos, int n) {
    unsigned s = 0;
    for (int k = 0; k < n; k++)
        s |= 1u << pos[k];
    return s;
}

static void test_confidence(void) {
    char err[256];
    struct {
        const char *kv[3];
        double t, s;
        int fix8;       /* position 8 fixed */
        int must[2];    /* positions with t_next = 0 (-1 = none) */
        int expect[12]; /* expected unmasked positions, -1 terminated */
    } cases[] = {
        {{"k=3", NULL, NULL}, 0.75, 0.5, 0, {-1, -1}, {7, 2, 9, -1}},
        {{"k=4", NULL, NULL}, 0.75, 0.5, 0, {-1, -1}, {7, 2, 9, 4, -1}}, /* tie 4 = 5: lower */
        {{"k=5", NULL, NULL}, 0.75, 0.5, 0, {-1, -1}, {7, 2, 9, 4, 5, -1}},
        /* fraction 0.25 of 10 masked: ceil(2.5) = 3 */
        {{"fraction=0.25", NULL, NULL}, 0.75, 0.5, 0, {-1, -1}, {7, 2, 9, -1}},
        /* fraction 0.3 of 10: exactly 3 (no float round-up to 4) */
        {{"fraction=0.3", NULL, NULL}, 0.75, 0.5, 0, {-1, -1}, {7, 2, 9, -1}},
        /* default: round(10 · 1/3) = 3 */
        {{NULL, NULL, NULL}, 0.75, 0.5, 0, {-1, -1}, {7, 2, 9, -1}},
        /* default at t = 0.5, s = 0.2: round(10 · 0.6) = 6 */
        {{NULL, NULL, NULL}, 0.5, 0.2, 0, {-1, -1}, {7, 2, 9, 4, 5, 0, -1}},
        /* position 8 fixed: 9 candidates, fraction 0.5 → ceil(4.5) = 5; 8 never chosen */
        {{"fraction=0.5", NULL, NULL}, 0.75, 0.5, 1, {-1, -1}, {7, 2, 9, 4, 5, -1}},
        /* must-denoise positions 3 and 6 (least confident) are always included: k = 3 → 3, 6
         * and the most confident other one */
        {{"k=3", NULL, NULL}, 0.75, 0.5, 0, {3, 6}, {3, 6, 7, -1}},
        /* k = 1 < 2 must-denoise positions: n is raised to 2 */
        {{"k=1", NULL, NULL}, 0.75, 0.5, 0, {3, 6}, {3, 6, -1}},
        /* k larger than the masked count: everything */
        {{"k=50", NULL, NULL}, 0.75, 0.5, 0, {-1, -1}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        plugin_instance *p = make_sampler("confidence", cases[c].kv);
        int n_exp = 0;
        while (cases[c].expect[n_exp] >= 0)
            n_exp++;
        const unsigned want = bits(cases[c].expect, n_exp);
        int wrong = 0, bad = 0;
        for (int r = 0; r < 20; r++) {
            fixture *f = conf_fixture(cases[c].t, cases[c].s);
            f->fixed[8] = (uint8_t)cases[c].fix8;
            for (int k = 0; k < 2; k++)
                if (cases[c].must[k] >= 0) f->t_next[cases[c].must[k]] = 0;
            absorbing_rows(f);
            rng_init(&f->r, 40 + (uint64_t)r);
            rng before = f->r;
            CHECK_EQ(step(p, f, err, sizeof err), HDLM_OK);
            wrong += unmasked_set(f) != want;
            bad += !events_consistent(f) || f->core.draws != n_exp;
            /* no host uniforms: the draws are the only rng use */
            for (int k = 0; k < n_exp; k++)
                rng_u64(&before);
            bad += memcmp(&before, &f->r, sizeof before) != 0;
            /* events come in position order */
            for (size_t k = 1; k < f->core.n; k++)
                bad += f->core.ev[k].i <= f->core.ev[k - 1].i;
            bad += f->x[10] != 1 || f->x[11] != 1;
            fx_free(f);
        }
        if (wrong) fprintf(stderr, "confidence case %zu: wrong set\n", c);
        CHECK_EQ(wrong, 0);
        CHECK_EQ(bad, 0);
        plugin_instance_destroy(p);
    }
    /* the drawn tokens follow the real-token part of the row */
    {
        enum { N = 40000 };
        const char *const kv[] = {"k=1", NULL};
        plugin_instance *p = make_sampler("confidence", kv);
        fixture *f = conf_fixture(0.75, 0.5);
        long tok[5] = {0};
        int fails = 0;
        for (int r = 0; r < N; r++) {
            for (int j = 0; j < 10; j++)
                f->x[j] = 4;
            rng_init(&f->r, 100 + (uint64_t)r);
            fails += step(p, f, err, sizeof err) != HDLM_OK;
            tok[f->x[7]]++;
        }
        CHECK_EQ(fails, 0);
        CHECK_EQ(tok[4], 0);
        double sm[4];
        softmax_real(f, 7, sm);
        for (int v = 0; v < 4; v++)
            CHECK(within_4sigma(tok[v], N, sm[v]));
        fx_free(f);
        /* refuses a maskless process */
        f = fx_new(1, 3, 4, 4, -1);
        CHECK_EQ(step(p, f, err, sizeof err), HDLM_EINVAL);
        CHECK_CONTAINS(err, "confidence needs a process with a mask symbol");
        fx_free(f);
        plugin_instance_destroy(p);
    }
}

/* ---- analytic ----------------------------------------------------------------------------- */

static void test_analytic(void) {
    enum { N = 50000 };
    char err[256];
    plugin_instance *p = make_sampler("analytic", NULL);
    CHECK_EQ(p->info.needs, HDLM_INFO_SCORE);
    plugin_instance *an = make_sampler("ancestral", NULL);
    CHECK_EQ(an->info.needs, 0);
    plugin_instance_destroy(an);
    /* hand-written rows: position 0 masked, 1 visible (x = 2), 2 fixed masked, 3 settled */
    static const double rows[4][6] = {{0.1, 0.2, 0.3, 0.0, 0.1, 0.3},
                                      {0.05, 0.05, 0.8, 0.1, 0.0, 0.0},
                                      {0.2, 0.2, 0.2, 0.2, 0.2, 0.0},
                                      {0.2, 0.2, 0.2, 0.2, 0.2, 0.0}};
    fixture *f = fx_new(1, 4, 5, 6, 5);
    memcpy(f->probs, rows, sizeof rows);
    f->fixed[2] = 1;
    f->state[3] = HDLM_SETTLED;
    long cnt[2][6] = {{0}};
    int bad = 0;
    for (int r = 0; r < N; r++) {
        const int32_t x0[4] = {5, 2, 5, 4};
        memcpy(f->x, x0, sizeof x0);
        rng_init(&f->r, 9000 + (uint64_t)r);
        rng before = f->r;
        bad += step(p, f, err, sizeof err) != HDLM_OK;
        bad += !events_consistent(f) || f->core.draws != 2 || f->x[2] != 5 || f->x[3] != 4;
        rng_u64(&before), rng_u64(&before);
        bad += memcmp(&before, &f->r, sizeof before) != 0;
        cnt[0][f->x[0]]++;
        cnt[1][f->x[1]]++;
    }
    CHECK_EQ(bad, 0);
    for (int j = 0; j < 2; j++)
        for (int v = 0; v < 6; v++)
            CHECK(within_4sigma(cnt[j][v], N, rows[j][v]));
    fx_free(f);
    /* a maskless score process is fine: every position redrawn from its row */
    f = fx_new(1, 3, 4, 4, -1);
    for (int j = 0; j < 3; j++) {
        f->x[j] = j;
        f->probs[j * 4 + (j + 1) % 4] = 1.0; /* certain move to the next token */
    }
    CHECK_EQ(step(p, f, err, sizeof err), HDLM_OK);
    CHECK(events_consistent(f));
    CHECK_EQ(f->core.n, 3);
    for (int j = 0; j < 3; j++)
        CHECK_EQ(f->x[j], (j + 1) % 4);
    CHECK_EQ(f->core.ev[0].kind, HDLM_EVENT_CORRECT);
    /* a row that is not a probability vector is refused */
    f->probs[1 * 4 + 0] = -0.5;
    CHECK_EQ(step(p, f, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "reverse row of (b 0, i 1) is not a probability vector");
    fx_free(f);
    plugin_instance_destroy(p);
}

/* ---- ancestral with a maskless process, and context checks --------------------------------- */

static void test_ancestral_maskless_and_checks(void) {
    enum { N = 40000 };
    char err[256];
    plugin_instance *p = make_sampler("ancestral", NULL);
    fixture *f = fx_new(1, 2, 3, 3, -1);
    static const double rows[2][3] = {{0.7, 0.2, 0.1}, {0.0, 0.0, 1.0}};
    memcpy(f->probs, rows, sizeof rows);
    long cnt[3] = {0};
    int bad = 0;
    for (int r = 0; r < N; r++) {
        f->x[0] = 0, f->x[1] = 2;
        rng_init(&f->r, 600 + (uint64_t)r);
        bad += step(p, f, err, sizeof err) != HDLM_OK;
        /* one draw for the mixed row, none for the point mass */
        bad += !events_consistent(f) || f->core.draws != 1 || f->x[1] != 2;
        cnt[f->x[0]]++;
    }
    CHECK_EQ(bad, 0);
    for (int v = 0; v < 3; v++)
        CHECK(within_4sigma(cnt[v], N, rows[0][v]));
    /* context checks */
    f->x[0] = 7;
    CHECK_EQ(step(p, f, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "x[0] = 7 is outside 0..2");
    f->x[0] = 0;
    f->ctx.struct_size = 8;
    CHECK_EQ(step(p, f, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "sampler ctx of 8 bytes");
    f->ctx.struct_size = sizeof f->ctx;
    f->ctx.mask_id = 1;
    CHECK_EQ(step(p, f, err, sizeof err), HDLM_EINVAL);
    CHECK_CONTAINS(err, "mask_id = 1 must be -1 or an extra symbol");
    fx_free(f);
    plugin_instance_destroy(p);
}

int main(void) {
    error e = {0};
    char refusals[4096] = "";
    CHECK_EQ(plugin_registry_open(&reg, &e), HDLM_OK);
    CHECK(plugin_registry_load_default(reg, refusals, sizeof refusals, &e) >= 0);
    const char *need[] = {"ancestral", "acs", "remask", "confidence", "analytic"};
    for (int k = 0; k < 5; k++)
        if (!plugin_registry_find(reg, HDLM_KIND_SAMPLER, need[k])) {
            fprintf(stderr, "sampler plugin %s not found (refusals: %s)\n", need[k], refusals);
            return 1;
        }
    const char *const eta0[] = {"eta=0", NULL};
    test_example_unmask("ancestral", NULL);
    test_example_unmask("acs", eta0);
    test_example_last_step();
    test_invariants();
    test_acs_eta0_is_ancestral();
    test_acs_corrections();
    test_remask();
    test_remask_alpha();
    test_confidence();
    test_analytic();
    test_ancestral_maskless_and_checks();
    plugin_registry_close(reg);
    return check_report("test_samplers");
}
