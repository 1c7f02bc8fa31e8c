/* Likelihood evaluation (docs/method.md, "The bound"). Two estimators of the negative
 * log-likelihood of clean sequences:
 *
 * - eval_bound: the NELBO of the generative process the sampler runs — the run's hyperschedule,
 *   its attention layout and its noise process. Steps s = 1..K of the schedule take every position
 *   from its time at step s to its time at step s+1 (0 once settled); a position's first active
 *   step starts from the limit state, time 1 (the sampler draws it from the limit). The bound is
 *   the prior term KL(q(x_1 | x_0) || start) (the noise plugin's optional `prior` op, once per
 *   position) plus the sum over steps of the plugin's per-position `bound` terms at
 *   x_s ~ q(x_s | x_0). It is estimated by drawing steps (stratified), or computed over every
 *   step (exact mode); for schedules that settle whole blocks it uses the 2L layout, one drawn
 *   step per block in one pass (exact for the autoregressive schedule in one pass: the
 *   teacher-forced NLL). Continuous-time schedules (MDLM training) get the continuous-time bound.
 *   Which process: for processes whose reverse step is a proper distribution (absorbing,
 *   uniform, ε-hybrid) the exact discrete-time chain the sampler runs at temperature 1; for
 *   score-based processes (γ-hybrid) the continuous-time reverse process with the model's scores
 *   over the same schedule, whose τ-leaping discretisation the sampler runs — each step's DWDSE
 *   integral is estimated at one uniform time inside the step. out->process says which.
 * - eval_reference: the reference implementation's MDLM-style estimator (docs/deviations.md) with
 * its quirks — full attention whatever the schedule, p = (1−ε)t + ε, CE over all outputs, σ = ε at
 *   every position for conditioned models, and the L−1 denominator — for comparison with
 *   published numbers.
 *
 * Both return per-sequence totals so the caller gets a mean and a standard error over sequences
 * (which includes the Monte-Carlo noise). Sums are in float64. */
#ifndef HDLM_EVAL_H
#define HDLM_EVAL_H

#include "base/error.h"
#include "diffusion/hyper.h"
#include "hdlm/plugin.h"
#include "nn/model.h"

#include <stdint.h>

typedef struct eval_config {
    int context, block_type; /* MASK_CTX_* / MASK_BLOCK_*: the layout the sampler uses */
    int mc;                  /* draws per sequence; 0 = every step once (exact; discrete only) */
    int vectorised;          /* -1 auto (when exact to do so), 0 off, 1 required */
    int continuous;          /* -1 from the schedule's flag, 0 discrete steps, 1 continuous */
    int batch;               /* sequences per forward pass (default 8) */
    uint64_t seed;
    int context_width; /* block_causal settled width; 0 = hyper_mask_width's default */
} eval_config;

typedef struct eval_result {
    int64_t n_seq, L, tokens; /* tokens = n_seq * L (the denominator of nats) */
    double nats, se;          /* per-token estimate and its standard error */
    double prior;             /* per-token share of nats from the prior term (start of the chain) */
    const char *process;      /* which generative process the bound is the NELBO of (static text) */
    double *per_seq;          /* (n_seq) per-sequence totals in nats; eval_result_free */
    int exact, vectorised, continuous;
    int64_t n_steps, forwards, mc;
    double wall;
} eval_result;

void eval_result_free(eval_result *r);

/* seqs (n_seq, L) clean token ids < V (V = real vocabulary; the model outputs V + extras). */
int eval_bound(model *m, const hyper *h, void *noise_self, const hdlm_noise_ops *noise,
               const eval_config *cfg, const int32_t *seqs, int64_t n_seq, int L, int32_t V,
               eval_result *out, error *e);

typedef struct eval_ref_config {
    double eps; /* ε_e of p = (1−ε)t + ε (1e-3 in the reference's eval_modeling.py) */
    int B_mc;   /* replicas per round (16) */
    int rounds; /* rounds (⌊100/16⌋ = 6) */
    int batch;  /* sequences per forward pass, multiple replicas each */
    uint64_t seed;
} eval_ref_config;

/* The reference estimator; out->nats uses the reference's denominator (L − 1 per sequence);
 * out->tokens = n_seq * (L − 1). Needs a process with a mask symbol (id V). */
int eval_reference(model *m, void *noise_self, const hdlm_noise_ops *noise,
                   const eval_ref_config *cfg, const int32_t *seqs, int64_t n_seq, int L, int32_t V,
                   eval_result *out, error *e);

/* Mean and standard error of per-sequence totals, per token (denominator tokens/n each). */
void eval_summarise(eval_result *r, int64_t tokens_per_seq);

#endif
