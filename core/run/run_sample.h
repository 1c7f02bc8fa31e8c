/* Sample and store: generate with a run's model, noise process and hyperschedule through a sampler
 * plugin (diffusion/sample.h), store every sample with its provenance and trajectory, and hand
 * them back. What `run:sample{...}` and `hdlm sample` do. */
#ifndef HDLM_RUN_SAMPLE_H
#define HDLM_RUN_SAMPLE_H

#include "run/run.h"

typedef struct run_sample_opts {
    const char *sampler;       /* plugin name ("ancestral") */
    plugin_opts *sampler_opts; /* taken by run_sample (also on failure); NULL = none */
    int n;                     /* samples, 1..4096 */
    int length;                /* positions (callers default it to the model's seq_len) */
    double temperature, top_p;
    int top_k;
    uint64_t seed;
    int cache, events;
    const hyper *h;               /* another schedule (NULL: the run's) */
    const plugin_instance *sched; /* the plugin behind h (NULL for a Lua schedule) */
    int32_t *fixed_tok;           /* (length) prompt / infill tokens; run_sample_fixed fills */
    uint8_t *fixed;               /* (length) 1 = fixed; NULL = none */
} run_sample_opts;

/* The keys of run:sample's option table (NULL-terminated). */
extern const char *const run_sample_keys[];

/* Defaults of run:sample (n 1, temperature 1, top_p 1, cache and events on). */
void run_sample_defaults(run_sample_opts *o);
/* Checks n and length against the model and allocates the fixed
 * arrays; then run_sample_fix may place tokens. Messages start with "run:sample". */
int run_sample_check(const run *r, run_sample_opts *o, error *e);
/* Fixes ids[0..n) at positions at..at+n-1 (0-based); what = "prompt" or "infill at K". */
int run_sample_fix(run_sample_opts *o, const int32_t *ids, int n, int at, int is_prompt, error *e);
/* Encodes text with the run's tokenizer into a malloc'd array (*n ids). */
int run_encode(const run *r, const char *text, size_t len, const char *what, int32_t **ids, int *n,
               error *e);

typedef struct run_sample_item {
    int64_t id;
    char *text;
    const int32_t *tokens; /* (length) into run_samples.tokens */
    int64_t corrections, events;
} run_sample_item;

typedef struct run_samples {
    int n, length;
    run_sample_item *items;
    int32_t *tokens; /* (n, length) */
    int64_t nfe, steps;
    double wall;
} run_samples;

/* Samples, stores them in the run's row (with the newest checkpoint, the plugins and settings)
 * and fills out. Frees opts' fixed arrays and options. */
int run_sample(const run *r, plugin_registry *reg, run_sample_opts *o, run_samples *out, error *e);
void run_samples_free(run_samples *s);
void run_sample_opts_free(run_sample_opts *o);

#endif
