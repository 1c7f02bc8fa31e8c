/* The training objective's step draws (diffusion/method.c, method_prepare), without a model:
 * the shipped schedules and the probe noise fixture (tests/plugins/probes), through the real
 * plugin host. Every sequence's times and states must be those of one schedule step 1..K (found
 * by exact comparison with hyper_times), every step is drawn about equally often (i.i.d. draws:
 * within 4.5 sigma of N/K, none missing) and N/K times (+-1: a stratum boundary may round
 * either way) with low_discrepancy over G = N sequences; the attention rows are the states' rows;
 * in the vectorised 2L layout the clean copy is settled and every block's noisy copy holds the
 * levels of one of its own steps, each drawn about equally often. The loss of every shipped noise
 * process (all declare HDLM_INFO_CONCURRENT) spread over 2 threads equals the loss computed on one
 * thread, bit for bit: the totals, the per-position losses and the logit gradients. */
#include "base/rng.h"
#include "check.h"
#include "diffusion/hyper.h"
#include "diffusion/method.h"
#include "nn/mask.h"
#include "plugin/host.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V     10
#define L_MAX 16
#define BATCH 40
#define N_SEQ 1200 /* 30 batches */

static plugin_registry *reg;

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

typedef struct sched {
    plugin_instance *inst;
    hyper h;
    int L;
    int64_t K;
    int32_t W;
    float tl[64][L_MAX];   /* level times of steps 0..K */
    uint8_t st[64][L_MAX]; /* states */
    int32_t lev[64][L_MAX];
} sched;

static void sched_open(sched *s, const char *name, const char *opts, int L) {
    memset(s, 0, sizeof *s);
    s->inst = make(HDLM_KIND_SCHEDULE, name, opts);
    hyper_from_plugin(&s->h, s->inst->self, s->inst->ops, name);
    s->L = L;
    s->K = hyper_n_steps(&s->h, L);
    s->W = hyper_n_levels(&s->h);
    HDLM_ASSERT(s->K < 64 && L <= L_MAX);
    for (int64_t k = 0; k <= s->K; k++) {
        int64_t ns;
        error e = {0};
        HDLM_ASSERT(hyper_levels(&s->h, k, L, s->lev[k], &ns, &e) == HDLM_OK);
        hyper_times(s->lev[k], ns, L, s->W, HYPER_SAMPLING_EPS, s->tl[k], s->st[k]);
    }
}

/* |count - n p| <= 4.5 sigma of a binomial */
static int near_binomial(long count, long n, double p) {
    return fabs((double)count - (double)n * p) <= 4.5 * sqrt((double)n * p * (1 - p));
}

/* Draws N_SEQ sequences; counts[s] = sequences found at step s (0: matched no step). */
static void draw_steps(method *m, const sched *s, int ld, long *counts, long *bad_rows) {
    int32_t win[BATCH * L_MAX];
    rng base, streams[BATCH];
    rng_init(&base, 99);
    for (int j = 0; j < BATCH * s->L; j++)
        win[j] = (int32_t)(j % V);
    for (int g = 0; g < N_SEQ / BATCH; g++) {
        for (int b = 0; b < BATCH; b++)
            streams[b] = rng_split(&base, (uint64_t)(g * BATCH + b));
        error e = {0};
        CHECK_EQ(
            method_prepare(m, win, BATCH, streams, 0.37, (int64_t)g * BATCH, ld ? N_SEQ : 1, &e),
            HDLM_OK);
        for (int b = 0; b < BATCH; b++) {
            const float *t = m->t + (size_t)b * s->L;
            const uint8_t *st = m->state + (size_t)b * s->L;
            int found = 0;
            for (int64_t k = 1; k <= s->K && !found; k++)
                if (!memcmp(t, s->tl[k], (size_t)s->L * sizeof *t) &&
                    !memcmp(st, s->st[k], (size_t)s->L))
                    found = (int)k;
            counts[found]++;
            attn_row rows[L_MAX];
            mask_rows_from_states(rows, st, s->L, MASK_CTX_BLOCK_CAUSAL, (int)m->plan.block,
                                  MASK_BLOCK_FULL);
            for (int i = 0; i < s->L; i++) {
                const attn_row *r = &m->rows[(size_t)b * s->L + i];
                *bad_rows += r->lo1 != rows[i].lo1 || r->hi1 != rows[i].hi1 ||
                             r->lo2 != rows[i].lo2 || r->hi2 != rows[i].hi2 ||
                             m->pos[(size_t)b * s->L + i] != i;
            }
        }
    }
}

static void test_per_step(void *ns, const hdlm_noise_ops *nops) {
    const struct {
        const char *name, *opts;
        int L;
    } cases[] = {
        {"block_annealing", "width=4,tau=3", 16},
        {"simple_annealing", "width=4,tau=3", 16},
        {"hybrid_annealing", "width=4,tau=2", 12},
        {"diffusion", "tau=8", 16},
        {"autoregressive", "", 12},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sched s;
        sched_open(&s, cases[c].name, cases[c].opts, cases[c].L);
        for (int ld = 0; ld <= 1; ld++) {
            method m;
            method_config cfg = {.context = MASK_CTX_BLOCK_CAUSAL,
                                 .block_type = MASK_BLOCK_FULL,
                                 .low_discrepancy = ld};
            error e = {0};
            CHECK_EQ(method_init(&m, &cfg, &s.h, ns, nops, V, s.L, &e), HDLM_OK);
            long counts[64] = {0}, bad_rows = 0;
            draw_steps(&m, &s, ld, counts, &bad_rows);
            int bad = counts[0] != 0;
            for (int64_t k = 1; k <= s.K; k++)
                bad |= ld ? fabs((double)counts[k] - (double)N_SEQ / (double)s.K) > 1.0
                          : !near_binomial(counts[k], N_SEQ, 1.0 / s.K);
            if (bad) {
                fprintf(stderr, "%s (%s)%s: sequences per step (0 = matches no step 1..%lld):",
                        cases[c].name, cases[c].opts, ld ? " low-discrepancy" : "", (long long)s.K);
                for (int64_t k = 0; k <= s.K; k++)
                    fprintf(stderr, " %ld", counts[k]);
                fprintf(stderr, "\n");
            }
            CHECK(!bad);
            CHECK_EQ(bad_rows, 0);
            method_free(&m);
        }
        plugin_instance_destroy(s.inst);
    }
}

static void test_vectorised(void *ns, const hdlm_noise_ops *nops) {
    sched s;
    sched_open(&s, "block_annealing", "width=4,tau=3", 16); /* 4 blocks, steps 3k+1..3k+3 */
    method m;
    method_config cfg = {.context = MASK_CTX_BLOCK_CAUSAL, .vectorised = 1};
    error e = {0};
    CHECK_EQ(method_init(&m, &cfg, &s.h, ns, nops, V, s.L, &e), HDLM_OK);
    CHECK_EQ(m.T, 2 * s.L);
    int32_t win[BATCH * L_MAX];
    for (int j = 0; j < BATCH * s.L; j++)
        win[j] = (int32_t)(j % V);
    rng base, streams[BATCH];
    rng_init(&base, 5);
    long counts[4][3] = {{0}}, bad_clean = 0, unmatched = 0;
    for (int g = 0; g < N_SEQ / BATCH; g++) {
        for (int b = 0; b < BATCH; b++)
            streams[b] = rng_split(&base, (uint64_t)(g * BATCH + b));
        CHECK_EQ(method_prepare(&m, win, BATCH, streams, 0, 0, 1, &e), HDLM_OK);
        for (int b = 0; b < BATCH; b++) {
            const float *t = m.t + (size_t)b * m.T;
            const uint8_t *st = m.state + (size_t)b * m.T;
            for (int i = 0; i < s.L; i++)
                bad_clean += st[i] != HDLM_SETTLED || t[i] != HYPER_SAMPLING_EPS ||
                             m.pos[(size_t)b * m.T + i] != i ||
                             m.pos[(size_t)b * m.T + s.L + i] != i;
            for (int k = 0; k < 4; k++) {
                int found = -1;
                for (int q = 0; q < 3 && found < 0; q++) {
                    int64_t step = 3 * k + q + 1;
                    float tt[4];
                    uint8_t ss[4];
                    hyper_times(s.lev[step] + 4 * k, 0, 4, s.W, HYPER_SAMPLING_EPS, tt, ss);
                    if (!memcmp(t + s.L + 4 * k, tt, sizeof tt) &&
                        !memcmp(st + s.L + 4 * k, ss, sizeof ss))
                        found = q;
                }
                if (found < 0)
                    unmatched++;
                else
                    counts[k][found]++;
            }
        }
    }
    CHECK_EQ(bad_clean, 0);
    CHECK_EQ(unmatched, 0);
    int bad = 0;
    for (int k = 0; k < 4; k++)
        for (int q = 0; q < 3; q++)
            bad |= !near_binomial(counts[k][q], N_SEQ, 1.0 / 3);
    CHECK(!bad);
    method_free(&m);
    plugin_instance_destroy(s.inst);
}

/* method_loss on 1 and on 2 threads: identical bits (each sequence's call is the same call; the
 * totals are added in sequence order). Random logits, the vectorised block-annealing layout. */
static void test_concurrent_loss(const char *noise_name) {
    plugin_instance *noise = make(HDLM_KIND_NOISE, noise_name, "");
    CHECK(noise->info.flags & HDLM_INFO_CONCURRENT);
    sched s;
    sched_open(&s, "block_annealing", "width=4,tau=3", 16);
    method m;
    method_config cfg = {.context = MASK_CTX_BLOCK_CAUSAL, .vectorised = 1};
    error e = {0};
    CHECK_EQ(method_init(&m, &cfg, &s.h, noise->self, noise->ops, V, s.L, &e), HDLM_OK);
    enum { B = 8 };
    int32_t win[B * L_MAX];
    rng r, streams[B];
    rng_init(&r, 11);
    for (int j = 0; j < B * s.L; j++)
        win[j] = (int32_t)rng_below(&r, V);
    for (int b = 0; b < B; b++)
        streams[b] = rng_split(&r, (uint64_t)b);
    CHECK_EQ(method_prepare(&m, win, B, streams, 0, 0, 1, &e), HDLM_OK);
    size_t n = (size_t)B * m.T * m.Vp;
    float *logits = malloc(n * sizeof *logits), *d1 = malloc(n * sizeof *d1),
          *d2 = malloc(n * sizeof *d2), *l1 = malloc((size_t)B * m.T * sizeof *l1);
    HDLM_ASSERT(logits && d1 && d2 && l1);
    for (size_t i = 0; i < n; i++)
        logits[i] = (float)(4 * rng_uniform(&r) - 2);
    double t1 = 0, t2 = 0;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK_EQ(method_loss(&m, B, logits, d1, 0.5, &t1, &e), HDLM_OK);
    memcpy(l1, m.loss, (size_t)B * m.T * sizeof *l1);
    omp_set_num_threads(2);
    CHECK_EQ(method_loss(&m, B, logits, d2, 0.5, &t2, &e), HDLM_OK);
    omp_set_num_threads(threads);
    CHECK(t1 > 0 && isfinite(t1));
    CHECK(!memcmp(&t1, &t2, sizeof t1));
    CHECK(!memcmp(d1, d2, n * sizeof *d1));
    CHECK(!memcmp(l1, m.loss, (size_t)B * m.T * sizeof *l1));
    free(logits), free(d1), free(d2), free(l1);
    method_free(&m);
    plugin_instance_destroy(s.inst);
    plugin_instance_destroy(noise);
}

int main(void) {
    error e = {0};
    char refusals[4096] = "", dir[1024];
    const char *fd = getenv("HDLM_FIXTURE_DIR");
    snprintf(dir, sizeof dir, "%s/probes", fd && *fd ? fd : "tests/plugins");
    CHECK_EQ(plugin_registry_open(&reg, &e), HDLM_OK);
    CHECK(plugin_registry_load_default(reg, refusals, sizeof refusals, &e) >= 0);
    if (plugin_registry_load_dir(reg, dir, refusals, sizeof refusals, &e) < 2 ||
        !plugin_registry_find(reg, HDLM_KIND_NOISE, "probe_noise")) {
        fprintf(stderr, "probe fixtures not found in %s: %s %s\n", dir, e.msg, refusals);
        return 1;
    }
    plugin_instance *noise = make(HDLM_KIND_NOISE, "probe_noise", "");
    test_per_step(noise->self, noise->ops);
    test_vectorised(noise->self, noise->ops);
    plugin_instance_destroy(noise);
    const char *shipped[] = {"absorbing", "uniform", "epsilon_hybrid", "gamma_hybrid"};
    for (int i = 0; i < 4; i++)
        test_concurrent_loss(shipped[i]);
    plugin_registry_close(reg);
    return check_report("test_method");
}
