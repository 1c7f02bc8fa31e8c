/* Synthetic Markov sources (see synth.h): Dirichlet rows with a uniform floor, the exact
 * stationary distribution and entropy rate, and a seeded stationary text generator. */
#include "data/synth.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POWER_TOL   1e-13 /* L1 distance to the fixed point at which the power iteration stops */
#define POWER_FLOOR 1e-12 /* a step this small that no longer shrinks is rounding noise */
#define POWER_WORK  3e10  /* multiply-adds the power iteration may spend (~20 s) */
#define ROW_TOL     1e-9  /* how far from 1 a row of a caller's table may sum */

static int64_t ipow(int64_t b, int e) {
    int64_t r = 1;
    while (e-- > 0)
        r *= b;
    return r;
}

int synth_check_values(long long vocab, long long order, double alpha, long long n,
                       const char **key, error *e) {
    const char *k = NULL;
    if (vocab < 2 || vocab > SYNTH_VOCAB_MAX) {
        k = "vocab";
        error_set(e, HDLM_EINVAL, "must be in 2..%d, got %lld", SYNTH_VOCAB_MAX, vocab);
    } else if (order < 1 || order > SYNTH_ORDER_MAX) {
        k = "order";
        error_set(e, HDLM_EINVAL, "must be in 1..%d, got %lld", SYNTH_ORDER_MAX, order);
    } else if (!(alpha > 0 && alpha <= SYNTH_ALPHA_MAX)) { /* also refuses NaN */
        k = "alpha";
        error_set(e, HDLM_EINVAL, "must be in (0, %g], got %g", SYNTH_ALPHA_MAX, alpha);
    } else if (n < order + 1 || n > SYNTH_N_MAX) {
        k = "n";
        error_set(e, HDLM_EINVAL, "must be in %lld..%lld (more than order %lld), got %lld",
                  order + 1, (long long)SYNTH_N_MAX, order, n);
    }
    if (key) *key = k;
    return k ? HDLM_EINVAL : HDLM_OK;
}

int synth_check(const synth_config *c, int64_t n, const char **key, error *e) {
    return synth_check_values(c->vocab, c->order, c->alpha, n, key, e);
}

/* ---------------------------------------------------------------- drawing the table */

double synth_gamma_log(rng *r, double alpha) {
    HDLM_ASSERT(alpha > 0);
    /* alpha < 1: the boost Gamma(a) = Gamma(a+1) * U^(1/a); in log space U^(1/a) cannot
     * underflow. 1 - uniform lies in (0, 1], so the log is finite. */
    double boost = 0;
    if (alpha < 1) {
        boost = log(1.0 - rng_uniform(r)) / alpha;
        alpha += 1;
    }
    const double d = alpha - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = rng_normal(r), v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = 1.0 - rng_uniform(r);
        double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2 || log(u) < 0.5 * x2 + d * (1.0 - v + log(v)))
            return log(d) + log(v) + boost;
    }
}

/* One Dirichlet(alpha) row mixed with the uniform floor. */
static void draw_row(rng *r, int V, double alpha, double *row) {
    double mx = -INFINITY;
    for (int x = 0; x < V; x++) {
        row[x] = synth_gamma_log(r, alpha);
        if (row[x] > mx) mx = row[x];
    }
    double s = 0;
    for (int x = 0; x < V; x++)
        s += row[x] = exp(row[x] - mx); /* the largest is 1, so s >= 1 */
    for (int x = 0; x < V; x++)
        row[x] = (1.0 - SYNTH_FLOOR) * (row[x] / s) + SYNTH_FLOOR / V;
}

/* ---------------------------------------------------------------- stationary distribution */

static int check_rows(int V, int64_t n_ctx, const double *p, error *e) {
    for (int64_t c = 0; c < n_ctx; c++) {
        double s = 0;
        for (int x = 0; x < V; x++) {
            double q = p[c * V + x];
            if (!(q >= 0 && q <= 1))
                return error_set(e, HDLM_EINVAL,
                                 "synth: row %lld, entry %d: expected a probability, got %g",
                                 (long long)c, x, q);
            s += q;
        }
        if (fabs(s - 1) > ROW_TOL)
            return error_set(e, HDLM_EINVAL, "synth: row %lld sums to %.12g, expected 1",
                             (long long)c, s);
    }
    return HDLM_OK;
}

/* GTH: Gaussian elimination of the states from the last down, using the fact that in a censored
 * irreducible chain the diagonal pivot 1 - P[k][k] equals the (subtraction-free) sum of the
 * probabilities of leaving k to the lower states; exact to rounding even for nearly periodic or
 * nearly decomposable chains, where the power iteration crawls. O(n^3), n <= SYNTH_EXACT_MAX. */
static int stationary_gth(int V, int64_t n, const double *p, double *pi, error *e) {
    double *a = calloc((size_t)(n * n), sizeof *a);
    if (!a) return error_set(e, HDLM_ENOMEM, "synth: out of memory (%lld contexts)", (long long)n);
    const int64_t shift = n / V; /* context c goes to (c % shift) * V + x */
    for (int64_t c = 0; c < n; c++)
        for (int x = 0; x < V; x++)
            a[c * n + (c % shift) * V + x] += p[c * V + x];
    for (int64_t k = n - 1; k > 0; k--) {
        double *ak = a + k * n, s = 0;
        for (int64_t j = 0; j < k; j++)
            s += ak[j];
        if (!(s > 0)) {
            free(a);
            return error_set(e, HDLM_EINVAL,
                             "synth: the chain is reducible (context %lld cannot reach a lower "
                             "context)",
                             (long long)k);
        }
        for (int64_t i = 0; i < k; i++) {
            double *ai = a + i * n, f = ai[k] / s;
            ai[k] = f;
            if (f == 0) continue;
            for (int64_t j = 0; j < k; j++)
                ai[j] += f * ak[j];
        }
    }
    pi[0] = 1;
    double total = 1;
    for (int64_t k = 1; k < n; k++) {
        double v = 0;
        for (int64_t i = 0; i < k; i++)
            v += pi[i] * a[i * n + k];
        pi[k] = v;
        total += v;
    }
    for (int64_t k = 0; k < n; k++)
        pi[k] /= total;
    free(a);
    return HDLM_OK;
}

/* Power iteration pi <- pi P from the uniform distribution. Rotating (nearly periodic) modes make
 * single steps oscillate, so progress is judged on window maxima: with m1 the largest L1 step of
 * the last HIST steps and m0 that of the HIST before, rho = (m1 / m0)^(1 / HIST) and it stops when
 * the estimated distance to the fixed point m1 * rho / (1 - rho) is below POWER_TOL, or when the
 * steps have made no new low for STALL iterations at rounding level (below POWER_FLOOR): on nearly
 * periodic chains the iterate ends in a rounding-level cycle whose distance to pi (about
 * 1e-16 / spectral gap) is as good as this method gets. It gives up after POWER_WORK
 * multiply-adds. */
int synth_stationary_power(int vocab, int order, const double *p, double *pi, error *e) {
    HDLM_ASSERT(vocab >= 2 && order >= 1);
    const int V = vocab;
    const int64_t n = ipow(V, order), shift = n / V;
    int rc = check_rows(V, n, p, e);
    if (rc != HDLM_OK) return rc;
    double *nx = malloc((size_t)n * sizeof *nx);
    if (!nx) return error_set(e, HDLM_ENOMEM, "synth: out of memory (%lld contexts)", (long long)n);
    for (int64_t c = 0; c < n; c++)
        pi[c] = 1.0 / (double)n;
    enum { HIST = 64, STALL = 2000 };
    double hist[2 * HIST], delta = 1, best = INFINITY;
    int64_t best_it = 0;
    const double max_it = POWER_WORK / ((double)n * V);
    for (int64_t it = 0;; it++) {
        if ((double)it > max_it) {
            free(nx);
            return error_set(e, HDLM_EINVAL,
                             "synth: the stationary distribution of %lld contexts did not converge "
                             "in %lld power iterations (last step %.3g); rows this sparse mix "
                             "slowly: use a larger alpha, or vocab^order <= %d (solved exactly)",
                             (long long)n, (long long)it, delta, SYNTH_EXACT_MAX);
        }
        memset(nx, 0, (size_t)n * sizeof *nx);
        for (int64_t c = 0; c < n; c++) {
            const double w = pi[c], *row = p + c * V;
            double *dst = nx + (c % shift) * V;
            for (int x = 0; x < V; x++)
                dst[x] += w * row[x];
        }
        double s = 0;
        for (int64_t c = 0; c < n; c++)
            s += nx[c];
        delta = 0;
        for (int64_t c = 0; c < n; c++) {
            nx[c] /= s;
            delta += fabs(nx[c] - pi[c]);
        }
        memcpy(pi, nx, (size_t)n * sizeof *nx);
        if (delta == 0) break;
        if (delta < 0.999 * best) best = delta, best_it = it;
        if (best < POWER_FLOOR && it - best_it > STALL) break;
        hist[it % (2 * HIST)] = delta;
        if (it + 1 >= 2 * HIST) {
            double m0 = 0, m1 = 0;
            for (int64_t k = 0; k < HIST; k++) {
                m1 = fmax(m1, hist[(it - k) % (2 * HIST)]);
                m0 = fmax(m0, hist[(it - HIST - k) % (2 * HIST)]);
            }
            double rho = pow(m1 / m0, 1.0 / HIST);
            if (rho < 1 && m1 * rho / (1 - rho) < POWER_TOL) break;
        }
    }
    free(nx);
    return HDLM_OK;
}

int synth_stationary_exact(int vocab, int order, const double *p, double *pi, error *e) {
    HDLM_ASSERT(vocab >= 2 && order >= 1);
    const int64_t n = ipow(vocab, order);
    int rc = check_rows(vocab, n, p, e);
    return rc != HDLM_OK ? rc : stationary_gth(vocab, n, p, pi, e);
}

int synth_stationary(int vocab, int order, const double *p, double *pi, error *e) {
    HDLM_ASSERT(vocab >= 2 && vocab <= SYNTH_VOCAB_MAX && order >= 1 && order <= SYNTH_ORDER_MAX);
    return ipow(vocab, order) <= SYNTH_EXACT_MAX ? synth_stationary_exact(vocab, order, p, pi, e)
                                                 : synth_stationary_power(vocab, order, p, pi, e);
}

static double row_entropy(const double *row, int V) {
    double h = 0;
    for (int x = 0; x < V; x++)
        if (row[x] > 0) h -= row[x] * log(row[x]);
    return h;
}

int synth_entropy_rate(int vocab, int order, const double *p, const double *pi, double *h,
                       error *e) {
    int64_t n = ipow(vocab, order);
    double *own = NULL;
    if (!pi) {
        own = malloc((size_t)n * sizeof *own);
        if (!own) return error_set(e, HDLM_ENOMEM, "synth: out of memory");
        int rc = synth_stationary(vocab, order, p, own, e);
        if (rc != HDLM_OK) {
            free(own);
            return rc;
        }
        pi = own;
    }
    double s = 0;
    for (int64_t c = 0; c < n; c++)
        s += pi[c] * row_entropy(p + c * vocab, vocab);
    *h = s;
    free(own);
    return HDLM_OK;
}

/* ---------------------------------------------------------------- the chain */

void synth_chain_free(synth_chain *ch) {
    free(ch->p);
    free(ch->pi);
    memset(ch, 0, sizeof *ch);
}

int synth_chain_build(const synth_config *c, synth_chain *ch, error *e) {
    memset(ch, 0, sizeof *ch);
    const char *key;
    error ce = {0};
    if (synth_check(c, c->order + 1, &key, &ce) != HDLM_OK)
        return error_set(e, ce.code, "synth: %s %s", key, ce.msg);
    const int V = c->vocab;
    ch->vocab = V;
    ch->order = c->order;
    ch->n_ctx = ipow(V, c->order);
    ch->p = malloc((size_t)(ch->n_ctx * V) * sizeof *ch->p);
    ch->pi = malloc((size_t)ch->n_ctx * sizeof *ch->pi);
    if (!ch->p || !ch->pi) {
        synth_chain_free(ch);
        return error_set(e, HDLM_ENOMEM, "synth: out of memory");
    }
    rng root;
    rng_init(&root, c->seed);
    rng r = rng_split(&root, 1);
    for (int64_t k = 0; k < ch->n_ctx; k++)
        draw_row(&r, V, c->alpha, ch->p + k * V);
    int rc = synth_stationary(V, c->order, ch->p, ch->pi, e);
    if (rc == HDLM_OK) rc = synth_entropy_rate(V, c->order, ch->p, ch->pi, &ch->entropy_nats, e);
    if (rc != HDLM_OK) {
        synth_chain_free(ch);
        return rc;
    }
    /* the stationary symbol marginal: q(x) = sum_c pi(c) p(x | c) */
    double q[SYNTH_VOCAB_MAX] = {0};
    for (int64_t k = 0; k < ch->n_ctx; k++)
        for (int x = 0; x < V; x++)
            q[x] += ch->pi[k] * ch->p[k * V + x];
    ch->unigram_nats = row_entropy(q, V);
    double hc = 0;
    for (int64_t k = 0; k < ch->n_ctx; k++)
        if (ch->pi[k] > 0) hc -= ch->pi[k] * log(ch->pi[k]);
    ch->context_nats = hc;
    return HDLM_OK;
}

/* ---------------------------------------------------------------- generating */

/* Index of the first entry whose running sum exceeds u (rounding past the end falls on the last
 * positive entry). */
static int64_t draw_index(const double *w, int64_t n, double u) {
    double acc = 0;
    int64_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        acc += w[i];
        last = i;
        if (u < acc) return i;
    }
    return last;
}

/* A draw of pi, written as its K symbols (oldest first) to sym; returns the context. */
static int64_t draw_context(const synth_chain *ch, rng *r, unsigned char *sym) {
    int64_t c = draw_index(ch->pi, ch->n_ctx, rng_uniform(r));
    for (int i = ch->order - 1, v = (int)c; i >= 0; i--, v /= ch->vocab)
        sym[i] = (unsigned char)(v % ch->vocab);
    return c;
}

/* n further symbols after context *ctx; returns their summed -log p. */
static double continue_chain(const synth_chain *ch, rng *r, int64_t *ctx, int64_t n,
                             unsigned char *out) {
    const int V = ch->vocab;
    const int64_t shift = ch->n_ctx / V;
    int64_t c = *ctx;
    double loss = 0;
    for (int64_t t = 0; t < n; t++) {
        const double *row = ch->p + c * V;
        int x = (int)draw_index(row, V, rng_uniform(r));
        loss -= log(row[x]);
        out[t] = (unsigned char)x;
        c = (c % shift) * V + x;
    }
    *ctx = c;
    return loss;
}

double synth_generate(const synth_chain *ch, rng *r, int64_t n, unsigned char *out) {
    HDLM_ASSERT(n >= 1);
    unsigned char first[SYNTH_ORDER_MAX];
    int64_t c = draw_context(ch, r, first);
    int k = ch->order;
    memcpy(out, first, (size_t)(n < k ? n : k));
    return n > k ? continue_chain(ch, r, &c, n - k, out + k) : 0;
}

/* ---------------------------------------------------------------- writing */

static void fsync_parent(const char *path) {
    /* Makes the rename durable; a filesystem that refuses fsync on directories still leaves a
     * correct file behind, so failure is ignored. */
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
    int fd = open(d, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int synth_write(const synth_config *c, int64_t n, const char *out_path, synth_stats *stats,
                error *e) {
    const char *key;
    error ce = {0};
    if (synth_check(c, n, &key, &ce) != HDLM_OK)
        return error_set(e, ce.code, "synth: %s %s", key, ce.msg);
    synth_chain ch;
    int rc = synth_chain_build(c, &ch, e);
    if (rc != HDLM_OK) return rc;

    enum { CHUNK = 1 << 20 };
    size_t plen = strlen(out_path) + 32;
    char *tmp = malloc(plen);
    unsigned char *buf = malloc(CHUNK);
    if (!tmp || !buf) {
        free(tmp);
        free(buf);
        synth_chain_free(&ch);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", out_path);
    }
    snprintf(tmp, plen, "%s.tmp.%ld", out_path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = error_set(e, HDLM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    rng root;
    rng_init(&root, c->seed);
    rng r = rng_split(&root, 2);
    /* the first chunk starts with the K symbols of the initial context */
    int64_t ctx = draw_context(&ch, &r, buf);
    int64_t fill = ch.order, left = n - ch.order;
    double loss = 0;
    int ok = 1;
    while (ok && (left > 0 || fill > 0)) {
        int64_t m = CHUNK - fill < left ? CHUNK - fill : left;
        loss += continue_chain(&ch, &r, &ctx, m, buf + fill);
        left -= m;
        fill += m;
        for (int64_t i = 0; i < fill; i++)
            buf[i] = (unsigned char)('a' + buf[i]);
        ok = fwrite(buf, 1, (size_t)fill, f) == (size_t)fill;
        fill = 0;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) ok = 0, err = errno;
    if (!ok) {
        unlink(tmp);
        rc = error_set(e, HDLM_EIO, "%s: write failed: %s", tmp, strerror(err));
        goto done;
    }
    if (rename(tmp, out_path) != 0) {
        err = errno;
        unlink(tmp);
        rc = error_set(e, HDLM_EIO, "%s: cannot rename %s into place: %s", out_path, tmp,
                       strerror(err));
        goto done;
    }
    fsync_parent(out_path);
    if (stats) {
        stats->n = n;
        stats->entropy_nats = ch.entropy_nats;
        stats->entropy_bits = ch.entropy_nats / log(2.0);
        stats->unigram_nats = ch.unigram_nats;
        stats->empirical_nats = loss / (double)(n - ch.order);
        stats->context_nats = ch.context_nats;
    }
done:
    free(tmp);
    free(buf);
    synth_chain_free(&ch);
    return rc;
}
