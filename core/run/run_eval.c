/* run:eval / hdlm eval: the schedule-consistent bound (or the reference estimator) of a run. */
#include "run/run_eval.h"

#include "base/sha256.h"
#include "diffusion/eval.h"
#include "nn/mask.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define W "run:eval"

const char *const run_eval_keys[] = {
    "estimator", "split",   "sequences",     "length",  "mc",         "batch",
    "seed",      "data",    "schedule",      "context", "block_type", "vectorised",
    "model",     "weights", "eps",           "B_mc",    "rounds",     "store",
    "label",     "tokens",  "context_width", NULL};

void run_eval_defaults(run_eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->estimator = "consistent";
    o->split = "valid";
    o->sequences = o->length = o->mc = o->batch = o->seed = RUN_UNSET;
    o->context_width = o->B_mc = o->rounds = RUN_UNSET;
    o->vectorised = -1;
    o->eps = NAN;
    o->store = 1;
}

static int64_t or_default(int64_t v, int64_t def) {
    return v == RUN_UNSET ? def : v;
}

/* The sequences to bound: given ones, or `sequences` windows of `length` tokens of a split. */
typedef struct eval_seqs {
    const int32_t *tok;
    int64_t want;
    int len;
    const char *split, *data_path;
    corpus own; /* loaded from the run's config */
    char *own_path;
    int loaded;
} eval_seqs;

static int pick_sequences(const run *r, const run_eval_opts *o, const model *m, eval_seqs *s,
                          error *e) {
    s->split = o->split;
    if (o->tokens) {
        s->tok = o->tokens, s->want = o->n_given, s->len = o->given_len, s->split = "given";
        return HDLM_OK;
    }
    const corpus *c = o->data;
    s->data_path = o->data_path;
    if (!c) {
        int rc = run_config_corpus(r->st, r->id, &s->own_path, e);
        if (rc != HDLM_OK) return rc;
        if (!s->own_path)
            return error_set(e, HDLM_EINVAL,
                             "%s: run %d records no corpus file in its config; pass data = "
                             "hdlm.corpus{...}",
                             W, (int)r->id);
        if ((rc = corpus_load(s->own_path, &s->own, e)) != HDLM_OK) return rc;
        s->loaded = 1;
        c = &s->own, s->data_path = s->own_path;
    }
    int seq_len = m->cfg.seq_len;
    s->len = (int)or_default(o->length, seq_len);
    if (s->len < 2 || s->len > seq_len)
        return error_set(e, HDLM_EINVAL,
                         "%s: key 'length' must be in 2..%d (the model's seq_len), got %d", W,
                         seq_len, s->len);
    int valid = !strcmp(s->split, "valid");
    s->tok = valid ? c->valid : c->train;
    int64_t n_tok = valid ? c->n_valid : c->n_train;
    int64_t avail = n_tok / s->len;
    s->want = or_default(o->sequences, avail < 64 ? avail : 64);
    if (avail < 1)
        return error_set(e, HDLM_EINVAL,
                         "%s: the %s split has %d tokens, fewer than one sequence of %d", W,
                         s->split, (int)n_tok, s->len);
    if (s->want < 1 || s->want > avail)
        return error_set(e, HDLM_EINVAL,
                         "%s: key 'sequences' must be in 1..%d (%s split, length %d), got %d", W,
                         (int)avail, s->split, s->len, (int)s->want);
    return HDLM_OK;
}

static void seqs_free(eval_seqs *s) {
    if (s->loaded) corpus_free(&s->own);
    free(s->own_path);
}

/* The settings of the call, resolved against the run (what run:eval checks before any work). */
typedef struct eval_plan {
    int reference;
    model *m;
    const char *weights;
    const hyper *h;
    const plugin_instance *sp;
    int context, block_type, context_width;
    int32_t V;
    uint64_t seed;
    int batch;
} eval_plan;

static int plan_eval(const run *r, const run_eval_opts *o, eval_plan *p, error *e) {
    p->reference = !strcmp(o->estimator, "reference");
    if (!p->reference && strcmp(o->estimator, "consistent"))
        return error_set(e, HDLM_EINVAL,
                         "%s: key 'estimator' must be 'consistent' or 'reference', got '%s'", W,
                         o->estimator);
    p->m = o->m ? o->m : r->m;
    p->weights = o->weights ? o->weights : o->m ? "given" : "ema";
    p->h = o->h ? o->h : r->h;
    p->sp = o->h ? o->sched : r->sched;
    /* an unknown layout name keeps the run's (as run:eval always did) */
    p->context = mask_context_from_name(o->context ? o->context : "");
    if (p->context < 0) p->context = r->layout.context;
    p->block_type = mask_block_from_name(o->block_type ? o->block_type : "");
    if (p->block_type < 0) p->block_type = r->layout.block_type;
    p->context_width = (int)or_default(o->context_width, r->layout.context_width);
    if (p->context_width < 0)
        return error_set(e, HDLM_EINVAL, "%s: key 'context_width' must be >= 1, got %d", W,
                         p->context_width);
    if (strcmp(o->split, "valid") && strcmp(o->split, "train"))
        return error_set(e, HDLM_EINVAL, "%s: key 'split' must be 'valid' or 'train', got '%s'", W,
                         o->split);
    p->V = run_real_tokens(r);
    p->seed = (uint64_t)or_default(o->seed, 0);
    p->batch = (int)or_default(o->batch, 8);
    return HDLM_OK;
}

static int check_tokens(const eval_plan *p, const eval_seqs *s, error *e) {
    for (int64_t i = 0; i < s->want * s->len; i++)
        if (s->tok[i] < 0 || s->tok[i] >= p->V)
            return error_set(e, HDLM_EINVAL,
                             "%s: token %d at %d of the %s sequences is outside the model's %d "
                             "real tokens (another corpus?)",
                             W, (int)s->tok[i], (int)i, s->split, (int)p->V);
    if (p->batch < 1 || p->batch > 4096)
        return error_set(e, HDLM_EINVAL, "%s: key 'batch' must be in 1..4096, got %d", W, p->batch);
    return HDLM_OK;
}

/* The numbers every estimator reports, in bits per unit of text too. */
static void put_common(const run *r, const run_eval_opts *o, const eval_plan *p, const eval_seqs *s,
                       const eval_result *er, record *rec) {
    const double ln2 = log(2.0);
    record_str(rec, "estimator", o->estimator);
    record_num(rec, "nats", er->nats);
    record_num(rec, "se", er->se);
    record_num(rec, "bits_per_token", er->nats / ln2);
    /* bits per byte for every tokenizer: the evaluated tokens stand for this many text bytes
     * (tokenizer_unit_bytes: a BPE token its decoded length, <|endoftext|> the one blank line it
     * replaced), so runs with different tokenizers compare; text8 counts characters */
    int64_t n_units = 0;
    for (int64_t i = 0; i < s->want * s->len; i++)
        n_units += r->tok.kind ? tokenizer_unit_bytes(&r->tok, s->tok[i]) : 1;
    double per_unit = n_units > 0 ? (double)(s->want * s->len) / (double)n_units : 1.0;
    record_num(rec, "bytes_per_token", 1.0 / per_unit);
    record_num(rec, "bits_per_unit", er->nats / ln2 * per_unit);
    record_num(rec, "bits_per_byte", er->nats / ln2 * per_unit);
    record_num(rec, "bits", er->nats / ln2 * per_unit); /* what other tokenizers' runs share */
    record_num(rec, "bits_se", er->se / ln2 * per_unit);
    int text8 = r->tok.kind && !strcmp(tokenizer_name(r->tok.kind), "text8");
    record_str(rec, "unit", text8 ? "char" : "byte");
    if (r->tok.kind) record_str(rec, "tokenizer", tokenizer_label(&r->tok));
    record_int(rec, "sequences", er->n_seq);
    record_int(rec, "length", s->len);
    record_int(rec, "tokens", er->tokens);
    record_str(rec, "split", s->split);
    if (s->data_path) record_str(rec, "data", s->data_path);
    /* what pairs two evaluations item by item (hdlm compare): the same token ids in the same
     * order; ids hashed as little-endian int32 */
    char hex[65];
    sha256_hex(s->tok, (size_t)s->want * (size_t)s->len * sizeof *s->tok, hex);
    record_str(rec, "sequences_sha256", hex);
    record_str(rec, "weights", p->weights);
    record_int(rec, "seed", (int64_t)p->seed);
    record_int(rec, "batch", p->batch);
    record_int(rec, "forwards", er->forwards);
    record_num(rec, "wall", er->wall);
}

static void put_consistent(const eval_plan *p, const eval_seqs *s, const eval_result *er,
                           record *rec) {
    record_int(rec, "mc", er->mc);
    record_str(rec, "process", er->process);
    record_num(rec, "prior_nats", er->prior);
    record_bool(rec, "exact", er->exact);
    record_bool(rec, "vectorised", er->vectorised);
    record_bool(rec, "continuous", er->continuous);
    record_int(rec, "steps", er->n_steps);
    record_str(rec, "context", mask_context_name(p->context));
    record_str(rec, "block_type", p->block_type == MASK_BLOCK_CAUSAL ? "causal" : "full");
    record_int(rec, "context_width", hyper_mask_width(p->h, s->len, p->context_width));
    char *hj = run_plugin_json(p->sp, p->h);
    record_json(rec, "schedule", hj);
    free(hj);
}

/* Stores the bound with its per-sequence values (nats per token over the same denominator as
 * nats: length, or length - 1 for the reference estimator; their mean is the stored value). */
static int store_bound(const run *r, const eval_result *er, record *rec, error *e) {
    json_buf sj = {0};
    int rc = record_write_json(rec, &sj);
    if (rc != HDLM_OK) return error_set(e, rc, "%s: out of memory", W);
    int64_t ck = 0, eid = 0;
    rc = run_latest_checkpoint(r->st, r->id, &ck, e);
    double per_tok = er->n_seq ? (double)er->tokens / (double)er->n_seq : 1;
    double *items = malloc((size_t)(er->n_seq ? er->n_seq : 1) * sizeof *items);
    if (rc == HDLM_OK && !items) rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    for (int64_t b = 0; rc == HDLM_OK && b < er->n_seq; b++)
        items[b] = er->per_seq[b] / per_tok;
    if (rc == HDLM_OK)
        rc = store_evaluation_items(r->st, r->id, ck, "nll_bound", er->nats, er->se, sj.data, items,
                                    er->n_seq, &eid, e);
    if (rc == HDLM_OK) record_int(rec, "evaluation_id", eid);
    free(items);
    json_buf_free(&sj);
    return rc;
}

static int estimate(const run *r, const run_eval_opts *o, const eval_plan *p, const eval_seqs *s,
                    eval_result *er, record *rec, error *e) {
    const hdlm_noise_ops *no = r->noise->ops;
    if (p->reference) {
        double eps = isnan(o->eps) ? 1e-3 : o->eps;
        int B_mc = (int)or_default(o->B_mc, 16), rounds = (int)or_default(o->rounds, 6);
        eval_ref_config rc_cfg = {eps, B_mc, rounds, p->batch, p->seed};
        int rc =
            eval_reference(p->m, r->noise->self, no, &rc_cfg, s->tok, s->want, s->len, p->V, er, e);
        if (rc != HDLM_OK) return rc;
        put_common(r, o, p, s, er, rec);
        record_num(rec, "eps", eps);
        record_int(rec, "B_mc", B_mc);
        record_int(rec, "rounds", rounds);
        record_str(rec, "denominator", "L-1");
        record_num(rec, "nats_per_token_L", er->nats * (s->len - 1) / s->len);
        return HDLM_OK;
    }
    eval_config ec = {
        p->context, p->block_type,   (int)or_default(o->mc, 16), o->vectorised, -1, p->batch,
        p->seed,    p->context_width};
    int rc = eval_bound(p->m, p->h, r->noise->self, no, &ec, s->tok, s->want, s->len, p->V, er, e);
    if (rc != HDLM_OK) return rc;
    put_common(r, o, p, s, er, rec);
    put_consistent(p, s, er, rec);
    return HDLM_OK;
}

int run_eval(const run *r, const run_eval_opts *o, run_eval_result *out, error *e) {
    memset(out, 0, sizeof *out);
    eval_plan p;
    eval_seqs s = {0};
    eval_result er = {0};
    int rc = plan_eval(r, o, &p, e);
    if (rc == HDLM_OK) rc = pick_sequences(r, o, p.m, &s, e);
    if (rc == HDLM_OK) rc = check_tokens(&p, &s, e);
    if (rc == HDLM_OK) rc = estimate(r, o, &p, &s, &er, &out->res, e);
    if (rc == HDLM_OK) {
        char *nj = run_plugin_json(r->noise, NULL);
        record_json(&out->res, "noise", nj);
        free(nj);
        if (o->label) record_str(&out->res, "label", o->label);
        if (out->res.failed) rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    }
    if (rc == HDLM_OK && o->store) rc = store_bound(r, &er, &out->res, e);
    seqs_free(&s);
    if (rc == HDLM_OK) {
        out->per_seq = er.per_seq, out->n_seq = er.n_seq;
        er.per_seq = NULL;
    } else {
        run_eval_result_free(out);
    }
    eval_result_free(&er);
    return rc;
}

void run_eval_result_free(run_eval_result *r) {
    record_free(&r->res);
    free(r->per_seq);
    memset(r, 0, sizeof *r);
}
