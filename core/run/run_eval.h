/* Evaluating a run. run_eval: an upper bound on the NLL of held-out data consistent with the run's
 * hyperschedule (diffusion/eval.h), or the reference's estimator for comparison, stored in
 * `evaluations` with its per-sequence values. run_gen_eval: the quality of stored samples — NLL
 * under a judge run in both perplexity conventions, unigram entropy, distinct-n, repeated n-gram
 * rates and the word share (data/words.h) — stored in `evaluations` and in each sample's metrics.
 * What run:eval / run:gen_eval and `hdlm eval` do. Results come back as a record (record.h): the
 * Lua table and the stored settings are two renderings of it. */
#ifndef HDLM_RUN_EVAL_H
#define HDLM_RUN_EVAL_H

#include "data/tokfile.h"
#include "run/record.h"
#include "run/run.h"

#define RUN_UNSET INT64_MIN /* an integer option not given */

typedef struct run_eval_opts {
    const char *estimator;            /* "consistent" (default) or "reference" */
    const char *split;                /* "valid" (default) or "train" */
    int64_t sequences, length;        /* RUN_UNSET: min(64, available); the model's seq_len */
    int64_t mc, batch, seed;          /* RUN_UNSET: 16, 8, 0 */
    const corpus *data;               /* NULL: the file in the run's config */
    const char *data_path;            /* data's path (settings) */
    const hyper *h;                   /* another schedule (NULL: the run's) */
    const plugin_instance *sched;     /* the plugin behind h */
    const char *context, *block_type; /* NULL: the run's layout */
    int64_t context_width;            /* RUN_UNSET: the run's */
    int vectorised;                   /* -1 auto, 0, 1 */
    model *m;                         /* other weights (NULL: the run's) */
    const char *weights;              /* label of the weights; NULL: "ema", or "given" with m */
    double eps;                       /* NaN: 1e-3 */
    int64_t B_mc, rounds;             /* RUN_UNSET: 16, 6 */
    int store;                        /* store the result (default 1) */
    const char *label;
    const int32_t *tokens; /* given sequences (n_given x given_len), or NULL */
    int64_t n_given;
    int given_len;
} run_eval_opts;

/* The keys of run:eval's and run:gen_eval's option tables (NULL-terminated). */
extern const char *const run_eval_keys[];
extern const char *const run_gen_eval_keys[];

void run_eval_defaults(run_eval_opts *o);

typedef struct run_eval_result {
    record res; /* every value run:eval returns except per_sequence (and the settings stored) */
    double *per_seq; /* (n_seq) per-sequence totals in nats */
    int64_t n_seq;
} run_eval_result;

int run_eval(const run *r, const run_eval_opts *o, run_eval_result *out, error *e);
void run_eval_result_free(run_eval_result *r);

typedef struct run_gen_eval_opts {
    const run *judge;   /* NULL: only the judge-free metrics */
    const int64_t *ids; /* sample ids (n) */
    int n;
    const corpus *data; /* NULL: the run's corpus file (required without a judge) */
    int store;          /* default 1 */
    const char *label;
} run_gen_eval_opts;

typedef struct run_gen_eval_result {
    record res;      /* gen_nll, entropy, distinct_n, rep_n, word_share, n, ... */
    record settings; /* what is stored with the values (the result's `settings`) */
    int n, has_judge, has_words;
    double *per_sample_nll;   /* (n) with a judge */
    double *per_sample_share; /* (n) word share per sample; NaN = no complete word */
} run_gen_eval_result;

int run_gen_eval(const run *r, const run_gen_eval_opts *o, run_gen_eval_result *out, error *e);
void run_gen_eval_result_free(run_gen_eval_result *r);

#endif
