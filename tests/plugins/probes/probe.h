/* Shared by the probe fixtures (tests/plugins/probes/probe_noise.c, probe_sampler.c, built into
 * build/tests/plugins/probes) and the tests that read what they recorded
 * (tests/unit/test_sample_loop.c, test_eval_core.c, test_method.c).
 *
 * A probe records what the core hands to one of its ops — times, states, tokens, logits — call by
 * call, in a probe_log that is the first member of the instance's `self`: a test that made the
 * instance through the plugin host (real dlopen) reads it as ((probe_self *)inst->plugin_self)->log
 * (inst->self is the host's guarded handle). Recording is off until the test sets log.on = 1. All
 * state lives in `self` (no globals). */
#ifndef HDLM_TEST_PROBE_H
#define HDLM_TEST_PROBE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One call of an op: copies of the arrays it was given (NULL when the op had none). */
typedef struct probe_call {
    int64_t step; /* the sampler's ctx->step; -1 for noise ops (they do not see the step) */
    int64_t B, L;
    int32_t Vp;
    float *t, *s;    /* (B, L) t and s (noise ops), t_now and t_next (sampler) */
    uint8_t *state;  /* (B, L) */
    int32_t *x;      /* (B, L) xt (noise ops) or x before the step (sampler) */
    float *logits;   /* (B, L, Vp) */
    double *weights; /* (B, L) what the op returned per position (bound), else NULL */
} probe_call;

typedef struct probe_log {
    int on;
    probe_call *calls;
    size_t n, cap;
} probe_log;

static inline void *probe_dup(const void *src, size_t bytes) {
    if (!src) return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (p) memcpy(p, src, bytes);
    return p;
}

/* Appends a call; returns 0, or -1 when out of memory. */
static inline int probe_log_add(probe_log *lg, int64_t step, int64_t B, int64_t L, int32_t Vp,
                                const float *t, const float *s, const uint8_t *state,
                                const int32_t *x, const float *logits, const double *weights) {
    if (!lg->on) return 0;
    if (lg->n == lg->cap) {
        size_t nc = lg->cap ? 2 * lg->cap : 64;
        probe_call *c = realloc(lg->calls, nc * sizeof *c);
        if (!c) return -1;
        lg->calls = c, lg->cap = nc;
    }
    size_t n = (size_t)(B * L);
    probe_call *c = &lg->calls[lg->n];
    memset(c, 0, sizeof *c);
    c->step = step, c->B = B, c->L = L, c->Vp = Vp;
    c->t = probe_dup(t, n * sizeof *t);
    c->s = probe_dup(s, n * sizeof *s);
    c->state = probe_dup(state, n);
    c->x = probe_dup(x, n * sizeof *x);
    c->logits = probe_dup(logits, n * (size_t)Vp * sizeof *logits);
    c->weights = probe_dup(weights, n * sizeof *weights);
    lg->n++;
    if ((t && !c->t) || (s && !c->s) || (state && !c->state) || (x && !c->x) ||
        (logits && !c->logits) || (weights && !c->weights))
        return -1;
    return 0;
}

static inline void probe_log_clear(probe_log *lg) {
    for (size_t k = 0; k < lg->n; k++) {
        probe_call *c = &lg->calls[k];
        free(c->t), free(c->s), free(c->state), free(c->x), free(c->logits), free(c->weights);
    }
    lg->n = 0;
}

static inline void probe_log_free(probe_log *lg) {
    probe_log_clear(lg);
    free(lg->calls);
    memset(lg, 0, sizeof *lg);
}

/* probe_noise / probe_noise_cond: `reverse` records into `reverse`, `bound` into `bound`. */
typedef struct probe_noise_self {
    probe_log reverse, bound; /* first: what tests read */
    const void *host;
    int32_t V;
    int dt;       /* bound = t − s (1) or the constant `value` (0) per ACTIVE position */
    double value; /* the constant */
} probe_noise_self;

/* probe_sampler: every step call is recorded (with ctx->step). */
typedef struct probe_sampler_self {
    probe_log step;
    const void *host;
} probe_sampler_self;

#endif
