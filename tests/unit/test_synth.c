/* Synthetic Markov sources: the entropy rate against closed forms (uniform rows, a two-state
 * chain, i.i.d. rows, a floored deterministic cycle, higher-order liftings of an order-1 chain,
 * which also exercise the power iteration and the context indexing), the Gamma sampler's moments,
 * the table invariants (rows are floored distributions, pi is stationary), the generator against
 * the table (empirical log-loss, stationary first symbols) and the text file (letters only,
 * byte-identical per seed, prefix-stable in n, the same stream as synth_generate). */
#include "check.h"
#include "data/synth.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *path_in(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Whole file into a malloc'd buffer (caller frees). */
static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    HDLM_ASSERT(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    HDLM_ASSERT(p && fread(p, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static int64_t ipow(int64_t b, int e) {
    int64_t r = 1;
    while (e-- > 0)
        r *= b;
    return r;
}

static double h2(double a) { /* binary entropy, nats */
    return -a * log(a) - (1 - a) * log(1 - a);
}

static double entropy_of(int V, int K, const double *p) {
    double h = -1;
    error e = {0};
    CHECK_EQ(synth_entropy_rate(V, K, p, NULL, &h, &e), HDLM_OK);
    return h;
}

/* ||pi P - pi||_1, written out independently of the solver */
static double stationarity_residual(int V, int K, const double *p, const double *pi) {
    int64_t n = ipow(V, K);
    double *q = calloc((size_t)n, sizeof *q), r = 0;
    for (int64_t c = 0; c < n; c++)
        for (int x = 0; x < V; x++)
            q[(c * V + x) % n] += pi[c] * p[c * V + x];
    for (int64_t c = 0; c < n; c++)
        r += fabs(q[c] - pi[c]);
    free(q);
    return r;
}

static void test_check(void) {
    const char *key = NULL;
    error e = {0};
    synth_config ok = {8, 2, 0.5, 1};
    CHECK_EQ(synth_check(&ok, 2000000, &key, &e), HDLM_OK);
    CHECK(key == NULL);
    synth_config c = ok;
    c.vocab = 27;
    CHECK_EQ(synth_check(&c, 100, &key, &e), HDLM_EINVAL);
    CHECK_STR(key, "vocab");
    CHECK_STR(e.msg, "must be in 2..26, got 27");
    c = ok;
    c.vocab = 1;
    CHECK_EQ(synth_check(&c, 100, &key, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "must be in 2..26, got 1");
    c = ok;
    c.order = 5;
    CHECK_EQ(synth_check(&c, 100, &key, &e), HDLM_EINVAL);
    CHECK_STR(key, "order");
    CHECK_STR(e.msg, "must be in 1..4, got 5");
    c = ok;
    c.alpha = 0;
    CHECK_EQ(synth_check(&c, 100, &key, &e), HDLM_EINVAL);
    CHECK_STR(key, "alpha");
    CHECK_CONTAINS(e.msg, "got 0");
    c.alpha = NAN;
    CHECK_EQ(synth_check(&c, 100, &key, &e), HDLM_EINVAL);
    c.alpha = 2e9;
    CHECK_EQ(synth_check(&c, 100, &key, &e), HDLM_EINVAL);
    CHECK_EQ(synth_check(&ok, 2, &key, &e), HDLM_EINVAL); /* n must exceed the order */
    CHECK_STR(key, "n");
    CHECK_CONTAINS(e.msg, "got 2");
    CHECK_EQ(synth_check(&ok, 3, &key, &e), HDLM_OK);
    /* the library entry points name the field themselves */
    c = ok;
    c.order = 0;
    CHECK_EQ(synth_write(&c, 100, path_in("never.txt"), NULL, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "synth: order must be in 1..4, got 0");
    CHECK(access(path_in("never.txt"), F_OK) != 0);
    /* a table that is not a distribution is refused, naming the row */
    double bad[4] = {0.5, 0.5, 0.7, 0.2};
    double pi[2];
    CHECK_EQ(synth_stationary(2, 1, bad, pi, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "row 1 sums to 0.9");
}

/* Gamma(alpha, 1) has mean alpha and variance alpha; 400k draws, 5 standard errors. */
static void test_gamma(void) {
    const double alphas[] = {0.05, 0.3, 1.0, 2.5, 50.0};
    for (int k = 0; k < 5; k++) {
        double a = alphas[k];
        rng r;
        rng_init(&r, 11 + (uint64_t)k);
        const int N = 400000;
        double s = 0, s2 = 0;
        for (int i = 0; i < N; i++) {
            double g = exp(synth_gamma_log(&r, a));
            s += g;
            s2 += g * g;
        }
        double mean = s / N, var = s2 / N - mean * mean;
        CHECK_NEAR(mean, a, 5 * sqrt(a / N));
        /* Var of the sample variance is (mu4 - sigma^4)/N, mu4 = 3a^2 + 6a for Gamma(a) */
        CHECK_NEAR(var, a, 5 * sqrt((3 * a * a + 6 * a - a * a) / N));
    }
    /* tiny alpha stays finite in log space where the plain draw underflows */
    rng r;
    rng_init(&r, 3);
    int finite = 1;
    for (int i = 0; i < 1000; i++)
        finite &= isfinite(synth_gamma_log(&r, 1e-4));
    CHECK(finite);
}

/* (f) every row is a distribution with the uniform floor, and pi is a stationary distribution */
static void test_table_invariants(void) {
    const synth_config cs[] = {{2, 1, 0.5, 1},  {8, 2, 0.5, 1},  {5, 4, 0.01, 7},
                               {26, 2, 0.1, 3}, {3, 3, 1e-4, 9}, {13, 3, 2.0, 5}};
    for (int k = 0; k < 6; k++) {
        synth_chain ch;
        error e = {0};
        int rc = synth_chain_build(&cs[k], &ch, &e);
        CHECK_EQ(rc, HDLM_OK);
        if (rc != HDLM_OK) continue;
        CHECK_EQ(ch.n_ctx, ipow(cs[k].vocab, cs[k].order));
        const int V = ch.vocab;
        double worst_sum = 0, min_p = 1, pi_sum = 0, min_pi = 1;
        for (int64_t c = 0; c < ch.n_ctx; c++) {
            double s = 0;
            for (int x = 0; x < V; x++) {
                s += ch.p[c * V + x];
                min_p = fmin(min_p, ch.p[c * V + x]);
            }
            worst_sum = fmax(worst_sum, fabs(s - 1));
            pi_sum += ch.pi[c];
            min_pi = fmin(min_pi, ch.pi[c]);
        }
        CHECK(worst_sum < 1e-14);
        CHECK(min_p >= SYNTH_FLOOR / V * (1 - 1e-12));
        CHECK_NEAR(pi_sum, 1, 1e-13);
        CHECK(min_pi > 0);
        CHECK(stationarity_residual(V, ch.order, ch.p, ch.pi) < 1e-13);
        CHECK(ch.entropy_nats > 0 && ch.entropy_nats <= log(V) + 1e-12);
        /* conditioning cannot raise entropy: H <= H(unigram) <= log V */
        CHECK(ch.entropy_nats <= ch.unigram_nats + 1e-12);
        CHECK(ch.unigram_nats <= log(V) + 1e-12);
        /* chain rule: H(X1..XK) <= K H(X1), and >= H(X1) + (K - 1) H */
        CHECK(ch.context_nats <= ch.order * ch.unigram_nats + 1e-12);
        CHECK(ch.context_nats >= ch.unigram_nats + (ch.order - 1) * ch.entropy_nats - 1e-12);
        if (ch.order == 1) CHECK_NEAR(ch.context_nats, ch.unigram_nats, 1e-13);
        synth_chain_free(&ch);
    }
    /* the same seed draws the same table, another seed another one */
    synth_chain a, b, c;
    error e = {0};
    synth_config ca = {8, 2, 0.5, 42}, cb = ca;
    cb.seed = 43;
    CHECK_EQ(synth_chain_build(&ca, &a, &e), HDLM_OK);
    CHECK_EQ(synth_chain_build(&ca, &b, &e), HDLM_OK);
    CHECK_EQ(synth_chain_build(&cb, &c, &e), HDLM_OK);
    CHECK(!memcmp(a.p, b.p, (size_t)(a.n_ctx * 8) * sizeof(double)));
    CHECK(memcmp(a.p, c.p, (size_t)(a.n_ctx * 8) * sizeof(double)) != 0);
    CHECK(a.entropy_nats == b.entropy_nats && a.entropy_nats != c.entropy_nats);
    synth_chain_free(&a);
    synth_chain_free(&b);
    synth_chain_free(&c);
}

/* (a) alpha huge: Dirichlet rows concentrate on uniform, so H -> log V */
static void test_uniform_limit(void) {
    const int Vs[] = {2, 8, 26};
    for (int k = 0; k < 3; k++) {
        synth_config c = {Vs[k], k == 2 ? 1 : 2, 1e8, 5};
        synth_chain ch;
        error e = {0};
        CHECK_EQ(synth_chain_build(&c, &ch, &e), HDLM_OK);
        CHECK_NEAR(ch.entropy_nats, log(Vs[k]), 1e-6);
        CHECK_NEAR(ch.unigram_nats, log(Vs[k]), 1e-6);
        synth_chain_free(&ch);
    }
    /* and small alpha gives a clearly lower entropy (sparse rows) */
    synth_config c = {8, 2, 0.05, 5};
    synth_chain ch;
    error e = {0};
    CHECK_EQ(synth_chain_build(&c, &ch, &e), HDLM_OK);
    CHECK(ch.entropy_nats < 0.5 * log(8));
    synth_chain_free(&ch);
}

/* (b) two states, p(0->1) = a, p(1->0) = b: pi0 = b / (a + b), H = pi0 h(a) + pi1 h(b) */
static void test_two_state(void) {
    /* the last two mix slowly (second eigenvalue 0.996 and -0.997): the power iteration must not
     * stop early */
    const double ab[][2] = {{0.1, 0.3}, {0.5, 0.5},     {0.9, 0.02},   {0.001, 0.999},
                            {0.7, 0.7}, {0.001, 0.003}, {0.999, 0.998}};
    for (int k = 0; k < 7; k++) {
        double a = ab[k][0], b = ab[k][1];
        double p[4] = {1 - a, a, b, 1 - b};
        double pi0 = b / (a + b), want = pi0 * h2(a) + (1 - pi0) * h2(b);
        CHECK_NEAR(entropy_of(2, 1, p), want, 1e-14);
        double pi[2], pw[2];
        error e = {0};
        CHECK_EQ(synth_stationary_exact(2, 1, p, pi, &e), HDLM_OK);
        CHECK_NEAR(pi[0], pi0, 1e-15);
        CHECK_EQ(synth_stationary_power(2, 1, p, pw, &e), HDLM_OK);
        CHECK_NEAR(pw[0], pi0, 1e-12);
        /* the same chain written as order 2 (rows depend on the newest symbol only, the lowest
         * digit of the context): same entropy rate, pi(x1 x2) = pi(x1) p(x2 | x1) */
        double p2[8], pi2[4];
        for (int c = 0; c < 4; c++)
            for (int x = 0; x < 2; x++)
                p2[c * 2 + x] = p[(c % 2) * 2 + x];
        CHECK_NEAR(entropy_of(2, 2, p2), want, 1e-14);
        CHECK_EQ(synth_stationary(2, 2, p2, pi2, &e), HDLM_OK);
        for (int c = 0; c < 4; c++) {
            int x1 = c / 2, x2 = c % 2;
            CHECK_NEAR(pi2[c], (x1 ? 1 - pi0 : pi0) * p[x1 * 2 + x2], 1e-15);
        }
    }
}

/* Rows that ignore the context: the source is i.i.d. and H = H(row) for every order. */
static void test_iid_rows(void) {
    const double row[5] = {0.5, 0.2, 0.15, 0.1, 0.05};
    double want = 0;
    for (int x = 0; x < 5; x++)
        want -= row[x] * log(row[x]);
    for (int K = 1; K <= 4; K++) {
        int64_t n = ipow(5, K);
        double *p = malloc((size_t)(n * 5) * sizeof *p);
        for (int64_t c = 0; c < n; c++)
            memcpy(p + c * 5, row, sizeof row);
        CHECK_NEAR(entropy_of(5, K, p), want, 1e-13);
        free(p);
    }
}

/* (c) the deterministic cycle 0 -> 1 -> ... -> V-1 -> 0 mixed with the floor eps: pi is uniform
 * by symmetry and H = -(1 - eps + eps/V) log(1 - eps + eps/V) - (V-1)(eps/V) log(eps/V) -> 0 */
static void test_floored_cycle(void) {
    const int V = 3;
    double prev = INFINITY;
    for (double eps = 1e-1; eps >= 1e-9; eps /= 10) {
        double p[9];
        for (int i = 0; i < V; i++)
            for (int x = 0; x < V; x++)
                p[i * V + x] = (x == (i + 1) % V ? 1 - eps : 0) + eps / V;
        double hi = 1 - eps + eps / V, lo = eps / V;
        double want = -hi * log(hi) - (V - 1) * lo * log(lo);
        double h = entropy_of(V, 1, p);
        CHECK_NEAR(h, want, 1e-14);
        CHECK(h < prev);
        prev = h;
    }
    CHECK(prev < 1e-7);
    /* the same with order 2: x[t] = x[t-1] + x[t-2] mod V (a Fibonacci rule) with the floor */
    const double eps = 1e-6;
    double p[27], pi[9];
    for (int c = 0; c < 9; c++)
        for (int x = 0; x < V; x++)
            p[c * V + x] = (x == (c / V + c % V) % V ? 1 - eps : 0) + eps / V;
    double h = entropy_of(V, 2, p);
    CHECK(h > 0 && h < 1e-4);
    error e = {0};
    CHECK_EQ(synth_stationary(V, 2, p, pi, &e), HDLM_OK);
    CHECK(stationarity_residual(V, 2, p, pi) < 1e-14);
}

/* A random order-1 chain over 26 symbols lifted to order 3 (17576 contexts: the power iteration)
 * and to order 2 (676: GTH): same entropy rate, and pi(x1 x2 x3) = pi1(x1) p(x2|x1) p(x3|x2). */
static void test_lifted_chain(void) {
    synth_config c1 = {26, 1, 0.05, 21}; /* sparse rows: slow mixing */
    synth_chain ch;
    error e = {0};
    CHECK_EQ(synth_chain_build(&c1, &ch, &e), HDLM_OK);
    const int V = 26;
    const double *q = ch.p;
    for (int K = 2; K <= 3; K++) {
        int64_t n = ipow(V, K);
        double *p = malloc((size_t)(n * V) * sizeof *p), *pi = malloc((size_t)n * sizeof *pi);
        for (int64_t c = 0; c < n; c++)
            memcpy(p + c * V, q + (c % V) * V, V * sizeof *p);
        double h = -1;
        CHECK_EQ(synth_stationary(V, K, p, pi, &e), HDLM_OK);
        CHECK_EQ(synth_entropy_rate(V, K, p, pi, &h, &e), HDLM_OK);
        CHECK_NEAR(h, ch.entropy_nats, 1e-12);
        double err = 0;
        for (int64_t c = 0; c < n; c++) {
            int64_t first = c / ipow(V, K - 1);
            double want = ch.pi[first];
            int64_t prevsym = first;
            for (int i = K - 2; i >= 0; i--) {
                int64_t sym = (c / ipow(V, i)) % V;
                want *= q[prevsym * V + sym];
                prevsym = sym;
            }
            err += fabs(pi[c] - want);
        }
        CHECK(err < 1e-12);
        free(p);
        free(pi);
    }
    synth_chain_free(&ch);
    /* both methods agree on a generated chain */
    synth_config c2 = {6, 4, 0.2, 8}; /* 1296 contexts */
    CHECK_EQ(synth_chain_build(&c2, &ch, &e), HDLM_OK);
    double *pw = malloc((size_t)ch.n_ctx * sizeof *pw), d = 0, hw = 0;
    CHECK_EQ(synth_stationary_power(6, 4, ch.p, pw, &e), HDLM_OK);
    for (int64_t c = 0; c < ch.n_ctx; c++)
        d += fabs(pw[c] - ch.pi[c]);
    CHECK(d < 1e-11);
    CHECK_EQ(synth_entropy_rate(6, 4, ch.p, pw, &hw, &e), HDLM_OK);
    CHECK_NEAR(hw, ch.entropy_nats, 1e-11);
    free(pw);
    synth_chain_free(&ch);
}

/* (d) the generator follows the table: the mean -log p of 1e6 symbols is within 0.01 nats of H
 * (well over 4 standard errors here), symbol frequencies match the stationary marginal, and the
 * first symbols of independent streams are already stationary. */
static void test_generator(void) {
    const synth_config cs[] = {{8, 2, 0.5, 1}, {4, 3, 0.1, 2}, {26, 1, 1.0, 3}, {2, 4, 0.05, 4}};
    const int64_t N = 1000000;
    unsigned char *out = malloc((size_t)N);
    for (int k = 0; k < 4; k++) {
        synth_chain ch;
        error e = {0};
        CHECK_EQ(synth_chain_build(&cs[k], &ch, &e), HDLM_OK);
        const int V = ch.vocab;
        rng r;
        rng_init(&r, 100 + (uint64_t)k);
        double loss = synth_generate(&ch, &r, N, out) / (double)(N - ch.order);
        CHECK_NEAR(loss, ch.entropy_nats, 0.01);
        double q[SYNTH_VOCAB_MAX] = {0}, f[SYNTH_VOCAB_MAX] = {0};
        for (int64_t c = 0; c < ch.n_ctx; c++)
            for (int x = 0; x < V; x++)
                q[x] += ch.pi[c] * ch.p[c * V + x];
        int in_range = 1;
        for (int64_t t = 0; t < N; t++) {
            in_range &= out[t] < V;
            f[out[t] < V ? out[t] : 0] += 1.0 / (double)N;
        }
        CHECK(in_range);
        double worst = 0;
        for (int x = 0; x < V; x++)
            worst = fmax(worst, fabs(f[x] - q[x]));
        CHECK(worst < 0.01);
        synth_chain_free(&ch);
    }
    free(out);

    /* stationary from the first symbol: over 40000 independent streams of K+1 symbols, symbol 0
     * follows the stationary marginal (a skewed one), not the uniform distribution */
    synth_config c = {4, 2, 0.2, 77};
    synth_chain ch;
    error e = {0};
    CHECK_EQ(synth_chain_build(&c, &ch, &e), HDLM_OK);
    double q[4] = {0}, f0[4] = {0}, f2[4] = {0};
    for (int64_t k = 0; k < ch.n_ctx; k++)
        for (int x = 0; x < 4; x++)
            q[x] += ch.pi[k] * ch.p[k * 4 + x];
    const int S = 40000;
    rng root;
    rng_init(&root, 5);
    for (int s = 0; s < S; s++) {
        rng r = rng_split(&root, (uint64_t)s);
        unsigned char o[3];
        synth_generate(&ch, &r, 3, o);
        f0[o[0]] += 1.0 / S;
        f2[o[2]] += 1.0 / S;
    }
    double skew = 0;
    for (int x = 0; x < 4; x++) {
        double se = sqrt(q[x] * (1 - q[x]) / S);
        CHECK_NEAR(f0[x], q[x], 5 * se + 1e-9);
        CHECK_NEAR(f2[x], q[x], 5 * se + 1e-9);
        skew = fmax(skew, fabs(q[x] - 0.25));
    }
    CHECK(skew > 0.05); /* the test could tell uniform from stationary */
    synth_chain_free(&ch);
}

/* (e) the text file: letters only, n bytes, same seed -> byte-identical, another seed ->
 * different, the stream for a smaller n is a prefix, and it is exactly synth_generate on stream 2
 * of the seed (the file is written in 1 MiB chunks; n here spans two). */
static void test_file(void) {
    synth_config c = {8, 2, 0.5, 1};
    const int64_t n = 1500000;
    synth_stats st, st2, st3, st4;
    error e = {0};
    CHECK_EQ(synth_write(&c, n, path_in("a.txt"), &st, &e), HDLM_OK);
    CHECK_EQ(synth_write(&c, n, path_in("b.txt"), &st2, &e), HDLM_OK);
    synth_config c3 = c;
    c3.seed = 2;
    CHECK_EQ(synth_write(&c3, n, path_in("c.txt"), &st3, &e), HDLM_OK);
    CHECK_EQ(synth_write(&c, 1000, path_in("short.txt"), &st4, &e), HDLM_OK);
    size_t na, nb, nc, ns;
    unsigned char *a = read_file(path_in("a.txt"), &na), *b = read_file(path_in("b.txt"), &nb);
    unsigned char *cc = read_file(path_in("c.txt"), &nc), *s = read_file(path_in("short.txt"), &ns);
    CHECK_EQ(na, n);
    CHECK_EQ(ns, 1000);
    CHECK(na == nb && !memcmp(a, b, na));
    CHECK(na == nc && memcmp(a, cc, na) != 0);
    CHECK(!memcmp(a, s, ns));
    int letters = 1;
    for (size_t i = 0; i < na; i++)
        letters &= a[i] >= 'a' && a[i] < 'a' + c.vocab;
    CHECK(letters);
    CHECK(memchr(a, '\n', na) == NULL);

    CHECK_EQ(st.n, n);
    CHECK(st.entropy_nats == st2.entropy_nats && st.empirical_nats == st2.empirical_nats);
    CHECK(st.entropy_nats != st3.entropy_nats);
    CHECK_NEAR(st.entropy_bits, st.entropy_nats / log(2.0), 1e-15);
    CHECK_NEAR(st.empirical_nats, st.entropy_nats, 0.01);
    CHECK(st.unigram_nats >= st.entropy_nats);
    CHECK(st.context_nats > st.unigram_nats && st.context_nats <= 2 * st.unigram_nats + 1e-12);

    synth_chain ch;
    CHECK_EQ(synth_chain_build(&c, &ch, &e), HDLM_OK);
    CHECK(ch.entropy_nats == st.entropy_nats && ch.unigram_nats == st.unigram_nats);
    rng root;
    rng_init(&root, c.seed);
    rng r = rng_split(&root, 2);
    unsigned char *g = malloc((size_t)n);
    double loss = synth_generate(&ch, &r, n, g);
    int same = 1;
    for (int64_t i = 0; i < n; i++)
        same &= a[i] == 'a' + g[i];
    CHECK(same);
    CHECK_NEAR(st.empirical_nats, loss / (double)(n - c.order), 1e-9); /* summed per chunk */
    /* the empirical loss recomputed from the letters with the table */
    double l2 = 0;
    for (int64_t t = c.order; t < n; t++) {
        int64_t ctx = (a[t - 2] - 'a') * 8 + (a[t - 1] - 'a');
        l2 -= log(ch.p[ctx * 8 + (a[t] - 'a')]);
    }
    CHECK_NEAR(st.empirical_nats, l2 / (double)(n - c.order), 1e-9);
    synth_chain_free(&ch);
    free(g);
    free(a);
    free(b);
    free(cc);
    free(s);

    /* no temporary file is left behind; an unwritable path fails naming it */
    DIR *d = opendir(dir);
    struct dirent *de;
    int tmp_left = 0;
    while ((de = readdir(d)))
        tmp_left |= strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    CHECK(!tmp_left);
    CHECK_EQ(synth_write(&c, 100, path_in("missing/x.txt"), NULL, &e), HDLM_EIO);
    CHECK_CONTAINS(e.msg, "missing/x.txt");
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hdlm_synth_XXXXXX");
    HDLM_ASSERT(mkdtemp(dir));
    test_check();
    test_gamma();
    test_table_invariants();
    test_uniform_limit();
    test_two_state();
    test_iid_rows();
    test_floored_cycle();
    test_lifted_chain();
    test_generator();
    test_file();
    int rc = check_report("test_synth");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
