/* Synthetic Markov sources with an exactly known entropy rate, for checking that a model's
 * likelihood bound never goes below the true entropy of its data.
 *
 * The source is an order-K Markov chain over V symbols (written as the letters 'a'.. , one byte
 * per symbol, no separators and no trailing newline, so every byte of the file is a symbol).
 * Contexts are the last K symbols, indexed c = x[t-K]*V^(K-1) + ... + x[t-1] (the newest symbol is
 * the lowest digit); row c of the table (V^K rows of V doubles) is p(x[t] | context c).
 *
 * Construction (seeded, deterministic): every row is a draw of a symmetric Dirichlet(alpha) (V
 * Gamma(alpha) draws, Marsaglia-Tsang with the alpha < 1 boost, normalised in log space so tiny
 * alpha cannot underflow a row to all zeros), then mixed with the uniform distribution:
 *     row = (1 - SYNTH_FLOOR) * dirichlet + SYNTH_FLOOR / V.
 * Every transition then has probability >= SYNTH_FLOOR / V, so the context chain is irreducible
 * and aperiodic (any context reaches any other in exactly K steps) and its stationary
 * distribution pi is unique. Small alpha gives sparse (low-entropy) rows, large alpha near-uniform
 * rows (H -> log V).
 *
 * The entropy rate is H = sum_c pi(c) H(row c) (nats). pi is computed exactly by the GTH
 * (Grassmann-Taksar-Heyman) elimination for up to SYNTH_EXACT_MAX contexts (about 1 s at 4096),
 * by power iteration above that (stopped when the estimated L1 distance to the fixed point is
 * below 1e-13, or at rounding level on slowly mixing chains).
 *
 * Randomness: rng_init(seed), then stream 1 (rng_split) draws the table and stream 2 the text, so
 * the chain does not depend on n and the text for a smaller n is a prefix of the one for a larger
 * n. The first K symbols are a draw of pi, so the stream is stationary from its first symbol. */
#ifndef HDLM_SYNTH_H
#define HDLM_SYNTH_H

#include "base/error.h"
#include "base/rng.h"

#include <stdint.h>

#define SYNTH_FLOOR     1e-3 /* uniform mixing mass of every row (see above) */
#define SYNTH_VOCAB_MAX 26
#define SYNTH_ORDER_MAX 4
#define SYNTH_ALPHA_MAX 1e9
#define SYNTH_N_MAX     (1LL << 40)
#define SYNTH_EXACT_MAX 4096 /* contexts up to which pi is solved exactly (GTH) */

typedef struct synth_config {
    int vocab;     /* V, 2..26 */
    int order;     /* K, 1..4 */
    double alpha;  /* Dirichlet concentration of each row, (0, 1e9] */
    uint64_t seed; /* any value */
} synth_config;

typedef struct synth_chain {
    int vocab, order;
    int64_t n_ctx; /* V^K */
    double *p;     /* (n_ctx, vocab) transition rows, each sums to 1 */
    double *pi;    /* (n_ctx) stationary distribution of the contexts */
    double entropy_nats, unigram_nats;
    double context_nats; /* joint entropy of K consecutive symbols, -sum_c pi(c) log pi(c) */
} synth_chain;

typedef struct synth_stats {
    int64_t n;             /* symbols written */
    double entropy_nats;   /* exact entropy rate per symbol */
    double entropy_bits;   /* the same in bits */
    double unigram_nats;   /* entropy of the stationary symbol marginal (order 0) */
    double empirical_nats; /* mean -log p(x[t] | context) of the text under the true chain over
                              t = K .. n-1: a check that the generator matches the table */
    double context_nats;   /* joint entropy of K consecutive symbols (nats, not per symbol): a
                              window of L >= K symbols has entropy context_nats + (L - K) H */
} synth_stats;

/* Checks a configuration and a length n (n must be in K+1..SYNTH_N_MAX so that the empirical
 * loss has at least one term). On failure returns HDLM_EINVAL, sets *key (may be NULL) to the
 * offending field ("vocab", "order", "alpha" or "n") and e->msg to "must be in 2..26, got 40"
 * (the caller prefixes the field name in its own terms: a CLI flag or a Lua key). */
int synth_check(const synth_config *c, int64_t n, const char **key, error *e);
/* The same on raw values (for callers that parse wider integers before filling a config). */
int synth_check_values(long long vocab, long long order, double alpha, long long n,
                       const char **key, error *e);

/* Draws the table of c (see above) and computes pi and the entropies. ch is owned by the caller
 * (synth_chain_free). */
int synth_chain_build(const synth_config *c, synth_chain *ch, error *e);
void synth_chain_free(synth_chain *ch); /* accepts a zeroed chain */

/* The stationary distribution of the context chain of an arbitrary order-K table p (n_ctx rows of
 * V entries, each a distribution): pi (n_ctx) receives it. The chain must be irreducible (for the
 * power iteration also aperiodic); fails with HDLM_EINVAL naming the row when a row is not a
 * distribution, or when the power iteration does not converge. */
int synth_stationary(int vocab, int order, const double *p, double *pi, error *e);
/* The two methods behind synth_stationary, callable directly for any vocab^order: GTH (exact to
 * rounding, O(n^3) time and n^2 doubles of memory for n = vocab^order) and power iteration
 * (O(n vocab) per step; stops at an estimated L1 error of 1e-13 or at rounding level, and fails
 * naming the size after a work budget, which very sparse rows (alpha around 0.001) with many
 * contexts can exhaust). */
int synth_stationary_exact(int vocab, int order, const double *p, double *pi, error *e);
int synth_stationary_power(int vocab, int order, const double *p, double *pi, error *e);
/* The entropy rate (nats per symbol) of an arbitrary table as above; pi may be NULL (computed
 * internally) or a stationary distribution from synth_stationary. */
int synth_entropy_rate(int vocab, int order, const double *p, const double *pi, double *h,
                       error *e);

/* log of one Gamma(alpha, 1) draw (alpha > 0): Marsaglia-Tsang for alpha >= 1, and for alpha < 1
 * Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha), kept in log space. */
double synth_gamma_log(rng *r, double alpha);

/* Generates n >= 1 symbols (0..V-1) of the chain into out, starting from a draw of pi; returns
 * the sum of -log p(x[t] | context) over t = K .. n-1 (0 when n <= K). */
double synth_generate(const synth_chain *ch, rng *r, int64_t n, unsigned char *out);

/* Builds the chain of c and writes n symbols as letters to out_path atomically
 * ("<out>.tmp.<pid>", fsync, rename). stats (may be NULL) receives the numbers. */
int synth_write(const synth_config *c, int64_t n, const char *out_path, synth_stats *stats,
                error *e);

#endif
