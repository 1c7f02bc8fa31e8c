/* The conformance checker behind `hdlm plugins check`. Each check collects its first violation
 * over every case it tries and prints one line; the numbers in an ok line say what was covered.
 * Instances come from plugin_instance_create, so every op runs under the host's crash guard: a
 * crash in an op is one FAIL line naming the op (ops without a status end the process with the
 * guard's message). Randomness comes from a fixed seed, so a run of the checker is reproducible. */
#include "plugin/check.h"

#include "base/rng.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
    CHECK_V = 7,     /* real tokens of the noise instances */
    N_DRAWS = 20000, /* draws per statistical comparison */
    MAX_STEPS = 1 << 20,
};

/* Lengths every schedule is checked at: tiny, odd, and a few block multiples and remainders. */
static const int64_t LENGTHS[] = {1, 2, 3, 5, 8, 13, 16, 33, 64};
enum { N_LENGTHS = sizeof LENGTHS / sizeof LENGTHS[0] };

typedef struct checker {
    FILE *out;
    const char *kind, *name;
    int fails;
} checker;

/* One check's outcome: the first failure message, "" while none. */
typedef struct verdict {
    char why[600];
} verdict;

__attribute__((format(printf, 2, 3))) static void fail_once(verdict *v, const char *fmt, ...) {
    if (v->why[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof v->why, fmt, ap);
    va_end(ap);
}

/* Prints the line of one check: the verdict's failure, or "ok" with the summary. */
__attribute__((format(printf, 4, 5))) static void report(checker *c, const char *check,
                                                         const verdict *v, const char *fmt, ...) {
    if (v && v->why[0]) {
        fprintf(c->out, "FAIL %s %s %s: %s\n", c->kind, c->name, check, v->why);
        c->fails++;
        return;
    }
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(c->out, "ok   %s %s %s: %s\n", c->kind, c->name, check, msg);
}

/* ------------------------------------------------------------------------------------------- */
/* schedules                                                                                   */

typedef struct sched_verdicts {
    verdict range, start, rise, settle, growth, zero, steps;
} sched_verdicts;

/* All checks of one length L. lev: (K+1, L) levels, ns: (K+1) settled counts. */
static void sched_check_length(sched_verdicts *v, int64_t L, int64_t K, int32_t W,
                               const int32_t *lev, const int64_t *ns, uint32_t growth,
                               int64_t block) {
    for (int64_t s = 0; s <= K; s++) {
        const int32_t *row = lev + s * L;
        if (ns[s] < 0 || ns[s] > L)
            fail_once(&v->range, "L = %lld step %lld: n_settled = %lld is outside 0..L",
                      (long long)L, (long long)s, (long long)ns[s]);
        for (int64_t i = 0; i < L; i++) {
            if (row[i] < 0 || row[i] > W)
                fail_once(&v->range,
                          "L = %lld step %lld position %lld: level %d is outside 0..W = %d",
                          (long long)L, (long long)s, (long long)i, row[i], W);
            if (i < ns[s] && row[i] != 0)
                fail_once(&v->range,
                          "L = %lld step %lld position %lld: settled (n_settled = %lld) but at "
                          "level %d, not 0",
                          (long long)L, (long long)s, (long long)i, (long long)ns[s], row[i]);
        }
        if (growth == HDLM_GROW_BLOCKS && ns[s] % block != 0 && ns[s] != L)
            fail_once(
                &v->growth,
                "L = %lld step %lld: n_settled = %lld is not a whole number of blocks of %lld "
                "(growth = blocks)",
                (long long)L, (long long)s, (long long)ns[s], (long long)block);
    }
    for (int64_t i = 0; i < L; i++)
        if (lev[i] != W || ns[0] != 0) {
            fail_once(&v->start,
                      "L = %lld step 0: position %lld at level %d, n_settled %lld; expected every "
                      "position at W = %d and nothing settled",
                      (long long)L, (long long)i, lev[i], (long long)ns[0], W);
            break;
        }
    for (int64_t s = 1; s <= K; s++) {
        const int32_t *prev = lev + (s - 1) * L, *row = lev + s * L;
        if (ns[s] < ns[s - 1])
            fail_once(&v->settle, "L = %lld step %lld: n_settled shrinks from %lld to %lld",
                      (long long)L, (long long)s, (long long)ns[s - 1], (long long)ns[s]);
        for (int64_t i = 0; i < L; i++) {
            if (row[i] > prev[i])
                fail_once(&v->rise,
                          "L = %lld position %lld rises from level %d at step %lld to %d at step "
                          "%lld (levels never rise)",
                          (long long)L, (long long)i, prev[i], (long long)(s - 1), row[i],
                          (long long)s);
            /* settling finalises what the previous step denoised: a position must have been in
             * play (active) the step before it settles */
            if (i >= ns[s - 1] && i < ns[s] && prev[i] == W)
                fail_once(&v->settle,
                          "L = %lld position %lld settles at step %lld but was worthless (level W "
                          "= %d) at step %lld, so it is never denoised",
                          (long long)L, (long long)i, (long long)s, W, (long long)(s - 1));
        }
    }
    for (int64_t i = ns[K]; i < L; i++)
        if (lev[K * L + i] == W) {
            fail_once(&v->steps,
                      "n_steps(%lld) = %lld ends too early: position %lld is still worthless "
                      "(level W = %d) at the last step",
                      (long long)L, (long long)K, (long long)i, W);
            break;
        }
    /* a position's last active step takes it to clean: it must be at level 0 there, unless it is
     * active for that one step only (which enters at W - 1, docs/writing-plugins.md) */
    for (int64_t i = 0; i < L; i++) {
        int64_t n_active = 0, last = -1;
        for (int64_t s = 0; s <= K; s++)
            if (i >= ns[s] && lev[s * L + i] < W) n_active++, last = s;
        if (n_active > 1 && lev[last * L + i] != 0)
            fail_once(&v->zero,
                      "L = %lld position %lld is active for %lld steps but its last active step "
                      "(%lld) leaves it at level %d: it never reaches level 0",
                      (long long)L, (long long)i, (long long)n_active, (long long)last,
                      lev[last * L + i]);
    }
}

static int check_schedule(checker *c, plugin_registry *r, const plugin_entry *en, error *e) {
    plugin_instance *p = NULL;
    verdict cv = {{0}};
    error ce = {0};
    if (plugin_instance_create(r, HDLM_KIND_SCHEDULE, en->desc->name, NULL, NULL, &p, &ce) !=
        HDLM_OK) {
        fail_once(&cv, "%s", ce.msg);
        report(c, "create", &cv, "%s", "");
        return ce.code == HDLM_ENOMEM ? error_set(e, HDLM_ENOMEM, "%s", ce.msg) : HDLM_OK;
    }
    report(c, "create", NULL, "default options");
    const hdlm_schedule_ops *ops = p->ops;
    verdict wv = {{0}}, gv = {{0}};
    int32_t W = ops->n_levels(p->self);
    if (W < 1) fail_once(&wv, "n_levels (W) = %d, expected >= 1", W);
    report(c, "n_levels", &wv, "W = %d", W);
    int64_t block = 0;
    uint32_t growth = ops->growth(p->self, &block);
    if (growth != HDLM_GROW_BLOCKS && growth != HDLM_GROW_TOKENS)
        fail_once(&gv, "growth returns %u, expected 1 (blocks) or 2 (tokens)", growth);
    else if (growth == HDLM_GROW_BLOCKS && block < 1)
        fail_once(&gv, "growth = blocks with block = %lld, expected >= 1", (long long)block);
    if (growth != HDLM_GROW_BLOCKS) block = 1;
    sched_verdicts v;
    memset(&v, 0, sizeof v);
    int64_t steps_total = 0;
    for (int i = 0; i < N_LENGTHS && W >= 1 && !gv.why[0] && !plugin_instance_crashed(p); i++) {
        int64_t L = LENGTHS[i];
        int64_t K = ops->n_steps(p->self, L), K2 = ops->n_steps(p->self, L);
        if (K != K2) {
            fail_once(&v.steps, "n_steps(%lld) returns %lld, then %lld", (long long)L, (long long)K,
                      (long long)K2);
            continue;
        }
        if (K < 1 || K > MAX_STEPS) {
            fail_once(&v.steps, "n_steps(%lld) = %lld, expected 1..%d", (long long)L, (long long)K,
                      MAX_STEPS);
            continue;
        }
        int32_t *lev = malloc((size_t)(K + 1) * (size_t)L * sizeof *lev);
        int64_t *ns = malloc((size_t)(K + 1) * sizeof *ns);
        if (!lev || !ns) {
            free(lev);
            free(ns);
            plugin_instance_destroy(p);
            return error_set(e, HDLM_ENOMEM, "check: out of memory for %lld x %lld levels",
                             (long long)(K + 1), (long long)L);
        }
        int ok = 1;
        for (int64_t s = 0; s <= K && ok; s++) {
            char err[512] = "";
            ns[s] = -1;
            int rc = ops->levels(p->self, s, L, lev + s * L, &ns[s], err, sizeof err);
            if (rc != HDLM_OK) {
                err[sizeof err - 1] = '\0';
                fail_once(&v.range, "levels(step %lld, L = %lld) failed: %s", (long long)s,
                          (long long)L, err[0] ? err : "(no message)");
                ok = 0;
            }
        }
        if (ok) sched_check_length(&v, L, K, W, lev, ns, growth, block);
        steps_total += K;
        free(lev);
        free(ns);
    }
    if (growth == HDLM_GROW_BLOCKS)
        report(c, "growth", &gv, "blocks of %lld", (long long)block);
    else
        report(c, "growth", &gv, "token by token");
    const char *crashed = plugin_instance_crashed(p);
    if (crashed) {
        verdict *all[] = {&v.range, &v.start, &v.rise, &v.settle, &v.growth, &v.zero, &v.steps};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            fail_once(all[k], "not run: the instance crashed in op %s", crashed);
    }
    char lens[64];
    snprintf(lens, sizeof lens, "%d lengths 1..%lld, %lld steps", N_LENGTHS,
             (long long)LENGTHS[N_LENGTHS - 1], (long long)steps_total);
    report(c, "levels in range", &v.range, "%s", lens);
    report(c, "step 0 all worthless", &v.start, "%s", lens);
    report(c, "levels never rise", &v.rise, "%s", lens);
    report(c, "settled prefix", &v.settle, "grows over denoised positions only; %s", lens);
    report(c, "growth consistent", &v.growth, "n_settled in whole blocks where declared; %s", lens);
    report(c, "reaches level 0", &v.zero, "%s", lens);
    report(c, "n_steps", &v.steps, "stable and long enough; %s", lens);
    plugin_instance_destroy(p);
    return HDLM_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* noise                                                                                       */

/* Whether `count` draws out of n agree with probability p: within 5 standard deviations (plus
 * one draw, for p near 0 or 1). */
static int draws_agree(long count, long n, double p, double *z) {
    double f = (double)count / (double)n, sd = sqrt(p * (1 - p) / (double)n);
    *z = sd > 0 ? fabs(f - p) / sd : (fabs(f - p) > 0 ? INFINITY : 0);
    return fabs(f - p) <= 5 * sd + 1.0 / (double)n;
}

typedef struct noise_case {
    plugin_instance *p;
    const hdlm_noise_ops *ops;
    int32_t V, Vp;
    rng r;
} noise_case;

/* A batch of B x L positions, all active at time t (s = t / 2), x0 = x0v everywhere. */
typedef struct nbatch {
    hdlm_noise_batch b;
    int32_t *x0, *xt;
    float *t, *s, *logits, *loss, *dlogits;
    uint8_t *state;
    double *probs;
} nbatch;

static void nbatch_free(nbatch *nb) {
    free(nb->x0), free(nb->xt), free(nb->t), free(nb->s), free(nb->logits), free(nb->loss);
    free(nb->dlogits), free(nb->state), free(nb->probs);
    memset(nb, 0, sizeof *nb);
}

static int nbatch_make(nbatch *nb, const noise_case *nc, int64_t B, int64_t L) {
    memset(nb, 0, sizeof *nb);
    size_t n = (size_t)(B * L), nv = n * (size_t)nc->Vp;
    nb->x0 = calloc(n, sizeof *nb->x0), nb->xt = calloc(n, sizeof *nb->xt);
    nb->t = calloc(n, sizeof *nb->t), nb->s = calloc(n, sizeof *nb->s);
    nb->logits = calloc(nv, sizeof *nb->logits), nb->loss = calloc(n, sizeof *nb->loss);
    nb->dlogits = calloc(nv, sizeof *nb->dlogits), nb->state = calloc(n, 1);
    nb->probs = calloc(nv, sizeof *nb->probs);
    if (!nb->x0 || !nb->xt || !nb->t || !nb->s || !nb->logits || !nb->loss || !nb->dlogits ||
        !nb->state || !nb->probs) {
        nbatch_free(nb);
        return HDLM_ENOMEM;
    }
    hdlm_noise_batch *b = &nb->b;
    b->struct_size = sizeof *b;
    b->B = B, b->L = L, b->V = nc->V, b->Vp = nc->Vp;
    b->block = L, b->annealed = 1;
    b->x0 = nb->x0, b->xt = nb->xt, b->t = nb->t, b->s = nb->s, b->state = nb->state;
    b->logits = nb->logits, b->loss = nb->loss, b->dlogits = nb->dlogits, b->probs = nb->probs;
    return HDLM_OK;
}

/* marginal(x0, t) for every x0 and a grid of t: finite, >= 0, sums to 1. */
static void noise_check_marginal(checker *c, noise_case *nc, double *probs) {
    static const double ts[] = {0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0};
    verdict v = {{0}};
    int n = 0;
    for (int32_t x0 = 0; x0 < nc->V && !v.why[0]; x0++)
        for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
            char err[512] = "";
            if (nc->ops->marginal(nc->p->self, x0, ts[k], probs, err, sizeof err) != HDLM_OK) {
                err[sizeof err - 1] = '\0';
                fail_once(&v, "marginal(x0 = %d, t = %g) failed: %s", x0, ts[k], err);
                break;
            }
            double sum = 0;
            for (int32_t y = 0; y < nc->Vp; y++) {
                if (!(probs[y] >= 0 && isfinite(probs[y])))
                    fail_once(&v, "marginal(x0 = %d, t = %g)[%d] = %g is not a probability", x0,
                              ts[k], y, probs[y]);
                sum += probs[y];
            }
            if (!(fabs(sum - 1) <= 1e-9))
                fail_once(&v, "marginal(x0 = %d, t = %g) sums to %.12g, not 1", x0, ts[k], sum);
            n++;
        }
    report(c, "marginal sums to 1", &v, "%d rows (x0 = 0..%d, t = 0.001..1), |sum - 1| <= 1e-9", n,
           nc->V - 1);
}

/* corrupt at a few times: the frequency of every symbol agrees with marginal(x0, t). */
static int noise_check_corrupt(checker *c, noise_case *nc, double *probs) {
    static const double ts[] = {0.2, 0.5, 0.8};
    verdict v = {{0}};
    nbatch nb;
    const int64_t L = 200, B = N_DRAWS / 200;
    if (nbatch_make(&nb, nc, B, L)) return HDLM_ENOMEM;
    long *count = calloc((size_t)nc->Vp, sizeof *count);
    if (!count) {
        nbatch_free(&nb);
        return HDLM_ENOMEM;
    }
    double worst = 0;
    for (size_t k = 0; k < sizeof ts / sizeof ts[0] && !v.why[0]; k++) {
        const int32_t x0 = (int32_t)(k % (size_t)nc->V);
        for (int64_t j = 0; j < B * L; j++)
            nb.x0[j] = x0, nb.t[j] = (float)ts[k], nb.state[j] = HDLM_ACTIVE, nb.xt[j] = -1;
        nb.b.rng = &nc->r;
        char err[512] = "";
        if (nc->ops->corrupt(nc->p->self, &nb.b, err, sizeof err) != HDLM_OK) {
            err[sizeof err - 1] = '\0';
            fail_once(&v, "corrupt(t = %g) failed: %s", ts[k], err);
            break;
        }
        if (nc->ops->marginal(nc->p->self, x0, (double)(float)ts[k], probs, err, sizeof err) !=
            HDLM_OK) {
            fail_once(&v, "marginal(x0 = %d, t = %g) failed: %s", x0, ts[k], err);
            break;
        }
        memset(count, 0, (size_t)nc->Vp * sizeof *count);
        for (int64_t j = 0; j < B * L; j++) {
            if (nb.xt[j] < 0 || nb.xt[j] >= nc->Vp) {
                fail_once(&v, "corrupt(t = %g) wrote token %d at position %lld, outside 0..%d",
                          ts[k], nb.xt[j], (long long)j, nc->Vp - 1);
                break;
            }
            count[nb.xt[j]]++;
        }
        for (int32_t y = 0; y < nc->Vp && !v.why[0]; y++) {
            double z;
            if (!draws_agree(count[y], B * L, probs[y], &z))
                fail_once(&v,
                          "x0 = %d, t = %g: corrupt gives symbol %d %.4f of the time, the marginal "
                          "says %.4f (%.1f standard errors, %lld draws)",
                          x0, ts[k], y, (double)count[y] / (double)(B * L), probs[y], z,
                          (long long)(B * L));
            if (z > worst && isfinite(z)) worst = z;
        }
    }
    report(c, "corrupt matches marginal", &v,
           "3 times x %lld draws, largest deviation %.2f standard errors (limit 5)",
           (long long)(B * L), worst);
    free(count);
    nbatch_free(&nb);
    return HDLM_OK;
}

/* A small batch with states of every kind, random logits and xt drawn by corrupt. */
static int noise_small_batch(nbatch *nb, noise_case *nc, verdict *v) {
    const int64_t B = 2, L = 6;
    if (nbatch_make(nb, nc, B, L)) return HDLM_ENOMEM;
    for (int64_t j = 0; j < B * L; j++) {
        int64_t i = j % L;
        nb->x0[j] = (int32_t)rng_below(&nc->r, (uint64_t)nc->V);
        nb->state[j] = i == 0 ? HDLM_SETTLED : i == L - 1 ? HDLM_WORTHLESS : HDLM_ACTIVE;
        nb->t[j] = nb->state[j] == HDLM_SETTLED     ? 1e-4f
                   : nb->state[j] == HDLM_WORTHLESS ? 0.9999f
                                                    : (float)(0.15 + 0.7 * (double)i / (double)L);
        nb->s[j] = nb->state[j] == HDLM_ACTIVE ? nb->t[j] * 0.5f : nb->t[j];
    }
    for (size_t k = 0; k < (size_t)(B * L * nc->Vp); k++)
        nb->logits[k] = (float)(1.5 * rng_normal(&nc->r));
    nb->b.rng = &nc->r;
    char err[512] = "";
    if (nc->ops->corrupt(nc->p->self, &nb->b, err, sizeof err) != HDLM_OK) {
        err[sizeof err - 1] = '\0';
        fail_once(v, "corrupt failed: %s", err);
    }
    nb->b.rng = NULL;
    return HDLM_OK;
}

/* dlogits of loss against central differences of total, entry by entry. */
static int noise_check_gradient(checker *c, noise_case *nc) {
    verdict v = {{0}};
    nbatch nb;
    if (noise_small_batch(&nb, nc, &v)) return HDLM_ENOMEM;
    size_t nv = (size_t)(nb.b.B * nb.b.L * nc->Vp);
    float *g = malloc(nv * sizeof *g);
    if (!g) {
        nbatch_free(&nb);
        return HDLM_ENOMEM;
    }
    char err[512] = "";
    double worst = 0;
    if (!v.why[0] && nc->ops->loss(nc->p->self, &nb.b, err, sizeof err) != HDLM_OK) {
        err[sizeof err - 1] = '\0';
        fail_once(&v, "loss failed: %s", err);
    }
    if (!v.why[0]) {
        memcpy(g, nb.dlogits, nv * sizeof *g);
        nb.b.dlogits = NULL; /* totals only from here */
        for (size_t k = 0; k < nv && !v.why[0]; k++) {
            const float keep = nb.logits[k], h = 1e-2f;
            double tot[2];
            float moved[2] = {keep + h, keep - h};
            for (int side = 0; side < 2 && !v.why[0]; side++) {
                nb.logits[k] = moved[side];
                if (nc->ops->loss(nc->p->self, &nb.b, err, sizeof err) != HDLM_OK)
                    fail_once(&v, "loss failed: %s", err);
                tot[side] = nb.b.total;
            }
            nb.logits[k] = keep;
            if (v.why[0]) break;
            double fd = (tot[0] - tot[1]) / ((double)moved[0] - (double)moved[1]);
            double dev = fabs(fd - (double)g[k]);
            double tol = 2e-4 + 2e-3 * fmax(fabs(fd), fabs((double)g[k]));
            if (dev / tol > worst) worst = dev / tol;
            if (!(dev <= tol)) {
                size_t pos = k / (size_t)nc->Vp;
                fail_once(&v,
                          "d total / d logits[position %zu, symbol %zu] is %.6g by dlogits, %.6g "
                          "by central differences (h = 0.01)",
                          pos, k % (size_t)nc->Vp, (double)g[k], fd);
            }
        }
    }
    report(c, "loss gradient", &v,
           "%zu logits against central differences, worst deviation %.2f of the tolerance", nv,
           worst);
    free(g);
    nbatch_free(&nb);
    return HDLM_OK;
}

/* A noise that declares HDLM_INFO_CONCURRENT: loss on two batches from two threads at once, many
 * times, gives the same bits as each call alone. A race shows as a difference (or a crash). */
static int noise_check_concurrent(checker *c, noise_case *nc) {
    verdict v = {{0}};
    if (!(nc->p->info.flags & HDLM_INFO_CONCURRENT)) {
        report(c, "concurrent loss", NULL, "%s",
               "not declared (no HDLM_INFO_CONCURRENT): the core calls loss one at a time");
        return HDLM_OK;
    }
    enum { ROUNDS = 200 };
    nbatch nb[2];
    float *want_dl[2] = {NULL, NULL}, *want_loss[2] = {NULL, NULL};
    double want_total[2] = {0, 0};
    int rc = HDLM_OK, made = 0, parallel_rounds = 0;
    for (; made < 2; made++)
        if (noise_small_batch(&nb[made], nc, &v)) {
            rc = HDLM_ENOMEM;
            break;
        }
    size_t n = made == 2 ? (size_t)(nb[0].b.B * nb[0].b.L) : 0, nv = n * (size_t)nc->Vp;
    for (int k = 0; k < 2 && rc == HDLM_OK; k++) {
        want_dl[k] = malloc(nv * sizeof *want_dl[k]);
        want_loss[k] = malloc(n * sizeof *want_loss[k]);
        if (!want_dl[k] || !want_loss[k]) rc = HDLM_ENOMEM;
    }
    for (int k = 0; k < 2 && rc == HDLM_OK && !v.why[0]; k++) {
        char err[512] = "";
        if (nc->ops->loss(nc->p->self, &nb[k].b, err, sizeof err) != HDLM_OK) {
            err[sizeof err - 1] = '\0';
            fail_once(&v, "loss failed: %s", err);
        }
        memcpy(want_dl[k], nb[k].dlogits, nv * sizeof *want_dl[k]);
        memcpy(want_loss[k], nb[k].loss, n * sizeof *want_loss[k]);
        want_total[k] = nb[k].b.total;
    }
    for (int round = 0; round < ROUNDS && rc == HDLM_OK && !v.why[0]; round++) {
        int status[2] = {HDLM_OK, HDLM_OK}, threads = 1;
        char err[2][512];
#pragma omp parallel num_threads(2)
        {
            int k = omp_get_thread_num();
            if (k == 0) threads = omp_get_num_threads();
            for (int j = k; j < 2; j += omp_get_num_threads())
                status[j] = nc->ops->loss(nc->p->self, &nb[j].b, err[j], sizeof err[j]);
        }
        parallel_rounds += threads == 2;
        for (int k = 0; k < 2 && !v.why[0]; k++) {
            if (status[k] != HDLM_OK) {
                err[k][sizeof err[k] - 1] = '\0';
                fail_once(&v, "loss failed when called from two threads: %s", err[k]);
            } else if (memcmp(&nb[k].b.total, &want_total[k], sizeof want_total[k]) ||
                       memcmp(nb[k].loss, want_loss[k], n * sizeof *want_loss[k]) ||
                       memcmp(nb[k].dlogits, want_dl[k], nv * sizeof *want_dl[k])) {
                fail_once(&v,
                          "loss called from two threads at once (round %d) differs from the "
                          "same call alone (total %.17g, alone %.17g): the flag "
                          "HDLM_INFO_CONCURRENT is wrong for this plugin",
                          round + 1, nb[k].b.total, want_total[k]);
            }
        }
    }
    if (rc == HDLM_OK)
        report(c, "concurrent loss", &v,
               "%d rounds of two batches on two threads (%d ran in parallel), same bits as alone",
               ROUNDS, parallel_rounds);
    for (int k = 0; k < 2; k++)
        free(want_dl[k]), free(want_loss[k]);
    for (int k = 0; k < made; k++)
        nbatch_free(&nb[k]);
    return rc;
}

/* reverse: every ACTIVE row is a distribution over the Vp symbols. */
static int noise_check_reverse(checker *c, noise_case *nc) {
    verdict v = {{0}};
    nbatch nb;
    if (noise_small_batch(&nb, nc, &v)) return HDLM_ENOMEM;
    size_t nv = (size_t)(nb.b.B * nb.b.L * nc->Vp);
    for (size_t k = 0; k < nv; k++)
        nb.probs[k] = NAN;
    char err[512] = "";
    int rows = 0;
    if (!v.why[0] && nc->ops->reverse(nc->p->self, &nb.b, err, sizeof err) != HDLM_OK) {
        err[sizeof err - 1] = '\0';
        fail_once(&v, "reverse failed: %s", err);
    }
    for (int64_t j = 0; j < nb.b.B * nb.b.L && !v.why[0]; j++) {
        if (nb.state[j] != HDLM_ACTIVE) continue;
        const double *row = nb.probs + j * nc->Vp;
        double sum = 0;
        for (int32_t y = 0; y < nc->Vp; y++) {
            if (!(row[y] >= 0 && isfinite(row[y])))
                fail_once(&v,
                          "reverse row of position %lld (t = %g, s = %g)[%d] = %g is not a "
                          "probability",
                          (long long)j, nb.t[j], nb.s[j], y, row[y]);
            sum += row[y];
        }
        if (!(fabs(sum - 1) <= 1e-6))
            fail_once(&v, "reverse row of position %lld (t = %g, s = %g) sums to %.9g, not 1",
                      (long long)j, nb.t[j], nb.s[j], sum);
        rows++;
    }
    report(c, "reverse rows are distributions", &v, "%d active rows, |sum - 1| <= 1e-6", rows);
    nbatch_free(&nb);
    return HDLM_OK;
}

/* limit draws from marginal(x0, 1) (the same for every x0), unless the plugin reports a prior
 * term for a different start. */
static int noise_check_limit(checker *c, noise_case *nc, double *probs) {
    verdict v = {{0}};
    nbatch nb;
    const int64_t L = 200, B = N_DRAWS / 200;
    if (nbatch_make(&nb, nc, B, L)) return HDLM_ENOMEM;
    long *count = calloc((size_t)nc->Vp, sizeof *count);
    if (!count) {
        nbatch_free(&nb);
        return HDLM_ENOMEM;
    }
    for (int64_t j = 0; j < B * L; j++)
        nb.xt[j] = -1, nb.t[j] = 1.0f, nb.state[j] = HDLM_WORTHLESS;
    nb.b.x0 = NULL, nb.b.rng = &nc->r;
    char err[512] = "";
    double worst = 0;
    if (nc->ops->limit(nc->p->self, &nb.b, err, sizeof err) != HDLM_OK) {
        err[sizeof err - 1] = '\0';
        fail_once(&v, "limit failed: %s", err);
    }
    for (int64_t j = 0; j < B * L && !v.why[0]; j++) {
        if (nb.xt[j] < 0 || nb.xt[j] >= nc->Vp)
            fail_once(&v, "limit wrote token %d at position %lld, outside 0..%d", nb.xt[j],
                      (long long)j, nc->Vp - 1);
        else
            count[nb.xt[j]]++;
    }
    if (!v.why[0] && nc->ops->prior) {
        double kl = 0;
        for (int32_t x0 = 0; x0 < nc->V && !v.why[0]; x0++)
            if (nc->ops->prior(nc->p->self, x0, &kl, err, sizeof err) != HDLM_OK)
                fail_once(&v, "prior(x0 = %d) failed: %s", x0, err);
            else if (!(kl >= 0 && isfinite(kl)))
                fail_once(&v, "prior(x0 = %d) = %g, expected a finite KL >= 0", x0, kl);
        report(c, "limit", &v,
               "%lld valid draws; starts away from the t = 1 marginal, prior term reported (%g "
               "nats for x0 = %d)",
               (long long)(B * L), kl, nc->V - 1);
    } else {
        for (int32_t x0 = 0; x0 < nc->V && !v.why[0]; x0++) {
            if (nc->ops->marginal(nc->p->self, x0, 1.0, probs, err, sizeof err) != HDLM_OK) {
                fail_once(&v, "marginal(x0 = %d, t = 1) failed: %s", x0, err);
                break;
            }
            for (int32_t y = 0; y < nc->Vp && !v.why[0]; y++) {
                double z;
                if (!draws_agree(count[y], B * L, probs[y], &z))
                    fail_once(&v,
                              "limit draws symbol %d %.4f of the time, marginal(x0 = %d, t = 1) "
                              "says %.4f (%.1f standard errors; without a prior op the start "
                              "must be the t = 1 marginal)",
                              y, (double)count[y] / (double)(B * L), x0, probs[y], z);
                if (z > worst && isfinite(z)) worst = z;
            }
        }
        report(c, "limit = marginal at t = 1", &v,
               "%lld draws against every x0, largest deviation %.2f standard errors",
               (long long)(B * L), worst);
    }
    free(count);
    nbatch_free(&nb);
    return HDLM_OK;
}

static int check_noise(checker *c, plugin_registry *r, const plugin_entry *en, error *e) {
    noise_case nc;
    memset(&nc, 0, sizeof nc);
    verdict cv = {{0}};
    error ce = {0};
    plugin_create_args args = {.vocab = CHECK_V, .n_extra = -1, .mask_id = -1};
    if (plugin_instance_create(r, HDLM_KIND_NOISE, en->desc->name, NULL, &args, &nc.p, &ce) !=
        HDLM_OK) {
        fail_once(&cv, "%s", ce.msg);
        report(c, "create", &cv, "%s", "");
        return ce.code == HDLM_ENOMEM ? error_set(e, HDLM_ENOMEM, "%s", ce.msg) : HDLM_OK;
    }
    nc.ops = nc.p->ops;
    nc.V = CHECK_V;
    nc.Vp = CHECK_V + nc.p->info.n_extra;
    rng_init(&nc.r, 0x68646c6d636b); /* fixed: the checker's verdicts are reproducible */
    report(c, "create", NULL,
           "default options, vocab %d; info: %d extra symbol%s, mask %d, flags 0x%x", CHECK_V,
           nc.p->info.n_extra, nc.p->info.n_extra == 1 ? "" : "s", nc.p->info.mask_id,
           nc.p->info.flags);
    double *probs = malloc((size_t)nc.Vp * sizeof *probs);
    int rc = probs ? HDLM_OK : HDLM_ENOMEM;
    /* a crashed instance is not called again: the checks after the crash are reported as not run */
    static const char *const names[] = {
        "marginal sums to 1", "corrupt matches marginal",       "loss gradient",
        "concurrent loss",    "reverse rows are distributions", "limit"};
    for (int k = 0; k < 6 && rc == HDLM_OK; k++) {
        const char *crashed = plugin_instance_crashed(nc.p);
        if (crashed) {
            verdict nv = {{0}};
            fail_once(&nv, "not run: the instance crashed in op %s", crashed);
            report(c, names[k], &nv, "%s", "");
            continue;
        }
        switch (k) {
        case 0:
            noise_check_marginal(c, &nc, probs);
            break;
        case 1:
            rc = noise_check_corrupt(c, &nc, probs);
            break;
        case 2:
            rc = noise_check_gradient(c, &nc);
            break;
        case 3:
            rc = noise_check_concurrent(c, &nc);
            break;
        case 4:
            rc = noise_check_reverse(c, &nc);
            break;
        default:
            rc = noise_check_limit(c, &nc, probs);
        }
    }
    free(probs);
    plugin_instance_destroy(nc.p);
    if (rc != HDLM_OK) return error_set(e, rc, "check %s: out of memory", en->desc->name);
    return HDLM_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* samplers                                                                                    */

typedef struct sampler_core {
    rng *r;
    long events;
} sampler_core;

static int32_t core_draw(void *core, const double *probs, int32_t n) {
    sampler_core *sc = core;
    double sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += probs[i] > 0 ? probs[i] : 0;
    double u = rng_uniform(sc->r) * sum, acc = 0;
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!(probs[i] > 0)) continue;
        acc += probs[i];
        last = i;
        if (u < acc) return i;
    }
    return last;
}

static void core_event(void *core, int64_t b, int64_t i, int32_t old_tok, int32_t new_tok, double p,
                       int kind) {
    (void)b, (void)i, (void)old_tok, (void)new_tok, (void)p, (void)kind;
    ((sampler_core *)core)->events++;
}

static double core_alpha(void *core, double t) {
    (void)core;
    return 1 - t; /* the masking process of the context below */
}

static int check_sampler(checker *c, plugin_registry *r, const plugin_entry *en, error *e) {
    enum { B = 2, L = 16, V = CHECK_V, Vp = CHECK_V + 1, M = CHECK_V, K = 6 };
    plugin_instance *p = NULL;
    verdict cv = {{0}}, tv = {{0}}, fv = {{0}};
    error ce = {0};
    plugin_create_args args = {.vocab = V, .n_extra = 1, .mask_id = M};
    if (plugin_instance_create(r, HDLM_KIND_SAMPLER, en->desc->name, NULL, &args, &p, &ce) !=
        HDLM_OK) {
        fail_once(&cv, "%s", ce.msg);
        report(c, "create", &cv, "%s", "");
        return ce.code == HDLM_ENOMEM ? error_set(e, HDLM_ENOMEM, "%s", ce.msg) : HDLM_OK;
    }
    report(c, "create", NULL, "default options; needs 0x%x", p->info.needs);
    const hdlm_sampler_ops *ops = p->ops;
    rng rg;
    rng_init(&rg, 0x73616d70);
    sampler_core sc = {.r = &rg, .events = 0};
    /* a masking process over V real tokens and the mask M: positions 0-1 settled, the last two
     * worthless, the rest active; positions 3 and 8 fixed (a prompt and an infill token) */
    int32_t x[B * L], before[B * L];
    uint8_t state[B * L], fixed[B * L];
    float tn[B * L], tx[B * L], logits[B * L * Vp];
    double probs[B * L * Vp];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++) {
            int j = b * L + i;
            state[j] = i < 2 ? HDLM_SETTLED : i >= L - 2 ? HDLM_WORTHLESS : HDLM_ACTIVE;
            fixed[j] = i == 3 || i == 8;
            x[j] = state[j] == HDLM_SETTLED || fixed[j] ? (int32_t)rng_below(&rg, V)
                   : state[j] == HDLM_WORTHLESS         ? M
                   : i % 4 == 1                         ? (int32_t)rng_below(&rg, V)
                                                        : M;
        }
    int64_t changed = 0, steps = 0;
    for (int64_t step = 1; step <= K && !tv.why[0] && !fv.why[0]; step++) {
        double t_now = 1.0 - (double)(step - 1) / K, t_next = 1.0 - (double)step / K;
        for (int j = 0; j < B * L; j++) {
            tn[j] = state[j] == HDLM_SETTLED ? 1e-4f : (float)t_now;
            tx[j] = state[j] == HDLM_SETTLED ? 0.0f : (float)t_next;
            double *row = probs + (size_t)j * Vp;
            float *lg = logits + (size_t)j * Vp;
            double z = 0;
            for (int y = 0; y < Vp; y++)
                lg[y] = (float)rng_normal(&rg), row[y] = 0;
            for (int y = 0; y < V; y++)
                z += exp((double)lg[y]);
            if (state[j] != HDLM_ACTIVE) continue;
            if (x[j] == M) { /* absorbing reverse step: unmask with probability 1 - s/t */
                double stay = t_now > 0 ? t_next / t_now : 0;
                for (int y = 0; y < V; y++)
                    row[y] = (1 - stay) * exp((double)lg[y]) / z;
                row[M] = stay;
            } else {
                row[x[j]] = 1;
            }
        }
        memcpy(before, x, sizeof x);
        hdlm_sampler_ctx ctx = {
            .struct_size = sizeof ctx,
            .B = B,
            .L = L,
            .V = V,
            .Vp = Vp,
            .mask_id = M,
            .step = step,
            .n_steps = K,
            .x = x,
            .state = state,
            .fixed = fixed,
            .t_now = tn,
            .t_next = tx,
            .logits = logits,
            .probs = probs,
            .rng = &rg,
            .core = &sc,
            .draw = core_draw,
            .event = core_event,
            .alpha = core_alpha,
        };
        char err[512] = "";
        if (ops->step(p->self, &ctx, err, sizeof err) != HDLM_OK) {
            err[sizeof err - 1] = '\0';
            fail_once(&tv, "step %lld failed: %s", (long long)step, err);
            break;
        }
        steps++;
        for (int j = 0; j < B * L; j++) {
            if (x[j] < 0 || x[j] >= Vp)
                fail_once(&tv, "step %lld wrote token %d at sequence %d position %d, outside 0..%d",
                          (long long)step, x[j], j / L, j % L, Vp - 1);
            if (fixed[j] && x[j] != before[j])
                fail_once(&fv,
                          "step %lld changed fixed position %d of sequence %d from %d to %d "
                          "(fixed positions MUST NOT change)",
                          (long long)step, j % L, j / L, before[j], x[j]);
            changed += x[j] != before[j];
        }
    }
    report(c, "valid tokens", &tv,
           "%lld steps of %d x %d positions, %lld tokens changed, %ld events", (long long)steps, B,
           L, (long long)changed, sc.events);
    report(c, "fixed positions untouched", &fv, "%d fixed positions over %lld steps", 2 * B,
           (long long)steps);
    plugin_instance_destroy(p);
    (void)e;
    return HDLM_OK;
}

/* ------------------------------------------------------------------------------------------- */

int plugin_check(plugin_registry *r, const plugin_entry *en, FILE *out, error *e) {
    HDLM_ASSERT(r && en && out);
    checker c = {.out = out, .kind = plugin_kind_name(en->desc->kind), .name = en->desc->name};
    int rc;
    switch (en->desc->kind) {
    case HDLM_KIND_SCHEDULE:
        rc = check_schedule(&c, r, en, e);
        break;
    case HDLM_KIND_NOISE:
        rc = check_noise(&c, r, en, e);
        break;
    default:
        rc = check_sampler(&c, r, en, e);
        break;
    }
    fflush(out);
    return rc != HDLM_OK ? rc : c.fails;
}
