/* The sampling loop (docs/method.md "Sampling"), driven by the hyperschedule: for every step the
 * levels now and next give per-position times; the model runs on the active positions (against a KV
 * cache of the settled prefix when that is exact); the noise plugin turns the model's output into
 * float64 reverse-step probabilities; the sampler plugin decides what to unmask, keep, correct or
 * remask, drawing through the core's categorical draw (temperature, top-k, top-p, float64 inverse
 * CDF). Prompt and infill positions are fixed and never change. */
#ifndef HDLM_SAMPLE_H
#define HDLM_SAMPLE_H

#include "base/error.h"
#include "diffusion/hyper.h"
#include "hdlm/plugin.h"
#include "nn/model.h"

#include <stdint.h>

typedef struct sample_config {
    int B, L; /* samples at once, positions */
    uint64_t seed;
    double temperature;       /* 1: the model's distribution; 0: greedy (argmax) */
    int top_k;                /* 0: off */
    double top_p;             /* >= 1: off; else the smallest set with mass >= top_p */
    int cache;                /* use the KV cache when it is exact */
    int context, block_type;  /* MASK_CTX_*, MASK_BLOCK_* (as in training) */
    const int32_t *fixed_tok; /* (L) tokens of fixed positions (prompt / infill) */
    const uint8_t *fixed;     /* (L) 1 = fixed; NULL = none */
    int record_events;
    int progress;      /* show a progress bar */
    int context_width; /* block_causal settled width; 0 = hyper_mask_width's default */
} sample_config;

typedef struct sample_event {
    int64_t b, step, pos;
    int32_t old_tok, new_tok;
    double prob;
    int kind; /* HDLM_EVENT_* */
} sample_event;

typedef struct sample_result {
    int32_t *tokens;      /* (B, L) */
    sample_event *events; /* (n_events) when recorded */
    int64_t n_events, cap_events;
    int64_t steps, nfe; /* schedule steps, network evaluations */
    double wall;        /* seconds */
    int cache_used;     /* 1 when the KV cache was used */
} sample_result;

/* Generates cfg->B samples of length cfg->L. The model's output size must be V + n_extra of the
 * noise process. A sampler whose `needs` flags the noise process lacks is refused with a message
 * naming both. */
int sample_run(model *m, const hyper *h, void *noise_self, const hdlm_noise_ops *noise,
               const char *noise_name, void *sampler_self, const hdlm_sampler_ops *sampler,
               const char *sampler_name, const sample_config *cfg, sample_result *out, error *e);
void sample_result_free(sample_result *r);

/* The core's categorical draw: weights w[n] >= 0 (unnormalised) with temperature / top-k / top-p;
 * float64 inverse CDF with u in [0, 1). Exposed for tests. */
int32_t sample_draw(const double *w, int32_t n, double temperature, int top_k, double top_p,
                    double u, double *scratch /* (3n) */);

#endif
