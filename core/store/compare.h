/* Comparing two runs on what the store holds (`hdlm compare`, db:compare): the likelihood bound
 * paired sequence by sequence (the latest nll_bound evaluations of the two runs that scored the
 * same sequences, by settings.sequences_sha256, with the same estimator: mean difference and its
 * standard error over the sequences) and, when both have one under the same judge, the gen_nll
 * evaluations unpaired (difference of means, standard errors combined). Reads only. */
#ifndef HDLM_COMPARE_H
#define HDLM_COMPARE_H

#include "store/store.h"

typedef struct compare_side {
    int64_t run_id, evaluation_id;
    char run_name[128];
    double value, se; /* as stored: nats per token */
    int64_t n;        /* sequences (bound) or samples (gen) */
} compare_side;

typedef struct compare_result {
    int has_bound;
    compare_side a, b; /* the two nll_bound evaluations */
    char estimator[32], split[16], sequences_sha256[65], data[1024];
    int64_t length;
    double diff, diff_se; /* mean of a_i - b_i over the sequences, and its standard error */
    double unpaired_se;   /* sqrt(se_a^2 + se_b^2): what ignoring the pairing would give */
    int64_t a_lower;      /* sequences where a's bound is below b's */
    int has_gen;
    compare_side gen_a, gen_b; /* the two gen_nll evaluations */
    int64_t judge_run;
    double gen_diff, gen_diff_se;
    char note[1024]; /* why the bound or gen part is missing, when one is */
} compare_result;

/* Compares runs a and b. Refuses (HDLM_EINVAL, one message naming both runs and what differs)
 * when a run does not exist, when both runs have bounds with per-sequence values but none on the
 * same sequences, or when there is nothing to compare at all. */
int store_compare(store *s, int64_t a, int64_t b, compare_result *out, error *e);

#endif
