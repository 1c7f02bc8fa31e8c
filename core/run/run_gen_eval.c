/* run:gen_eval: the quality of a run's stored samples (run_eval.h). */
#include "base/json.h"
#include "base/log.h"
#include "data/words.h"
#include "diffusion/eval.h"
#include "run/run_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define W "run:gen_eval"

const char *const run_gen_eval_keys[] = {"judge", "samples", "data", "store", "label", NULL};

/* ---- text statistics ---------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* n-grams (n <= 4, tokens < 2^16) of tok[0..len) packed into keys; returns their number. */
static int64_t pack_ngrams(const int32_t *tok, int64_t len, int n, uint64_t *keys) {
    int64_t k = 0;
    for (int64_t i = 0; i + n <= len; i++) {
        uint64_t key = 0;
        for (int j = 0; j < n; j++)
            key = key << 16 | (uint64_t)(tok[i + j] & 0xffff);
        keys[k++] = key;
    }
    return k;
}

static int64_t count_unique(uint64_t *keys, int64_t n) {
    if (n == 0) return 0;
    qsort(keys, (size_t)n, sizeof *keys, cmp_u64);
    int64_t u = 1;
    for (int64_t i = 1; i < n; i++)
        u += keys[i] != keys[i - 1];
    return u;
}

/* Unigram entropy (nats) of one sample's tokens. */
static double unigram_entropy(const int32_t *tok, int64_t len, uint64_t *scratch) {
    for (int64_t i = 0; i < len; i++)
        scratch[i] = (uint64_t)tok[i];
    qsort(scratch, (size_t)len, sizeof *scratch, cmp_u64);
    double h = 0;
    for (int64_t i = 0; i < len;) {
        int64_t j = i;
        while (j < len && scratch[j] == scratch[i])
            j++;
        double q = (double)(j - i) / (double)len;
        h -= q * log(q);
        i = j;
    }
    return h;
}

/* Whether h is the autoregressive chain for length L: L steps, step s (1..L) settles positions
 * < s-1, makes position s-1 the one active position and leaves the rest worthless (level W), so
 * that the bound is the model's exact left-to-right NLL. 0 also when the levels cannot be read. */
static int schedule_is_autoregressive(const hyper *h, int64_t L) {
    if ((h->flags & HDLM_INFO_CONTINUOUS) || L < 1 || hyper_n_steps(h, L) != L) return 0;
    int32_t Wl = hyper_n_levels(h);
    int32_t *level = malloc((size_t)L * sizeof *level);
    int ar = level != NULL;
    for (int64_t s = 1; s <= L && ar; s++) {
        int64_t n_settled;
        error e = {0};
        if (hyper_levels(h, s, L, level, &n_settled, &e) != HDLM_OK || n_settled != s - 1) ar = 0;
        for (int64_t i = 0; i < L && ar; i++)
            ar = i < s - 1 ? level[i] == 0 : i == s - 1 ? level[i] != Wl : level[i] == Wl;
    }
    free(level);
    return ar;
}

/* Word share of the samples (data/words.h) against the words of the corpus' training split. */
typedef struct word_stats {
    int on;               /* computed (a corpus was found) */
    int64_t vocabulary;   /* distinct words of the training split */
    int64_t words, known; /* pooled over the samples */
    double share, se;     /* known / words (NaN without words); ratio-estimator SE over samples */
    int64_t *w, *k;       /* per sample */
} word_stats;

static int word_share_of(const corpus *c, const int32_t *toks, int n, int len, word_stats *ws) {
    word_set *set = word_set_new();
    if (!set || word_set_add_tokens(set, &c->tok, c->train, c->n_train, TOKFILE_CHUNK) != 0) {
        word_set_free(set);
        return -1;
    }
    ws->vocabulary = word_set_size(set);
    for (int i = 0; i < n; i++) {
        if (words_count_tokens(set, &c->tok, toks + (size_t)i * len, len, &ws->w[i], &ws->k[i])) {
            word_set_free(set);
            return -1;
        }
        ws->words += ws->w[i];
        ws->known += ws->k[i];
    }
    word_set_free(set);
    ws->share = ws->words ? (double)ws->known / (double)ws->words : NAN;
    /* SE of a ratio of sums: sqrt(sum (k_i - R w_i)^2 / (n (n - 1))) / mean(w) */
    ws->se = NAN;
    if (n > 1 && ws->words) {
        double ss = 0, wbar = (double)ws->words / n;
        for (int i = 0; i < n; i++) {
            double d = (double)ws->k[i] - ws->share * (double)ws->w[i];
            ss += d * d;
        }
        ws->se = sqrt(ss / ((double)n * (n - 1))) / wbar;
    }
    ws->on = 1;
    return 0;
}

/* ---- the samples -------------------------------------------------------------------------- */

typedef struct sample_row {
    int64_t id, run_id, steps, nfe;
    char *tokens, *sampler, *settings;
} sample_row;

static int read_sample(void *ud, int ncol, const char *const *names, const store_value *vals) {
    sample_row *s = ud;
    for (int i = 0; i < ncol; i++) {
        const store_value *v = &vals[i];
        if (!strcmp(names[i], "run_id")) s->run_id = v->i;
        if (!strcmp(names[i], "steps")) s->steps = v->type == STORE_INT ? v->i : 0;
        if (!strcmp(names[i], "nfe")) s->nfe = v->type == STORE_INT ? v->i : 0;
        char **dst = !strcmp(names[i], "tokens")     ? &s->tokens
                     : !strcmp(names[i], "sampler")  ? &s->sampler
                     : !strcmp(names[i], "settings") ? &s->settings
                                                     : NULL;
        if (dst && v->type == STORE_TEXT) *dst = strdup(v->s);
    }
    s->id = -s->id; /* found marker: ids are positive */
    return 1;
}

/* What gen_eval works on: the samples' tokens (n x len), the corpus and the first sample's row
 * (its sampler and settings describe the set). */
typedef struct gen_input {
    int n, len;
    int32_t V; /* the tokens a sample may hold */
    int32_t *toks;
    sample_row first;
    const corpus *cor;
    corpus own;
    int loaded;
} gen_input;

static void input_free(gen_input *in) {
    free(in->toks);
    free(in->first.sampler), free(in->first.settings), free(in->first.tokens);
    if (in->loaded) corpus_free(&in->own);
}

/* Why sample row s (of tokens jv) cannot be judged, or NULL. */
static const char *bad_sample(const run *r, const run_gen_eval_opts *o, const gen_input *in,
                              const sample_row *s, const json_value *jv) {
    if (s->id > 0) return "does not exist";
    if (s->run_id != r->id) return "belongs to another run";
    if (json_type(jv) != JSON_ARRAY || json_len(jv) < 2) return "has no token array of length >= 2";
    if (in->len && (int)json_len(jv) != in->len) return "has another length than the first sample";
    if (o->judge && (int)json_len(jv) > o->judge->m->cfg.seq_len)
        return "is longer than the judge's seq_len";
    return NULL;
}

static int read_one(const run *r, const run_gen_eval_opts *o, gen_input *in, int i, error *e) {
    sample_row s = {.id = o->ids[i]};
    store_value pv = {.type = STORE_INT, .i = o->ids[i]};
    int rc = store_query_params(r->st,
                                "SELECT run_id, tokens, sampler, settings, steps, nfe FROM "
                                "samples WHERE id = ?",
                                1, &pv, read_sample, &s, e);
    if (rc != HDLM_OK) return rc;
    json_value *jv = NULL;
    if (s.tokens) json_parse(s.tokens, strlen(s.tokens), &jv, NULL);
    const char *bad = bad_sample(r, o, in, &s, jv);
    if (!bad && !in->len) {
        in->len = (int)json_len(jv);
        in->toks = malloc((size_t)o->n * in->len * sizeof *in->toks);
        if (!in->toks) bad = "does not fit in memory";
    }
    for (int k = 0; !bad && k < in->len; k++) {
        int64_t t = json_int(json_at(jv, (size_t)k));
        if (t < 0 || t >= in->V)
            bad = o->judge ? "holds a token the judge does not know (a mask left?)"
                           : "holds a token outside the corpus' vocabulary (a mask left?)";
        in->toks[(size_t)i * in->len + k] = (int32_t)t;
    }
    json_free(jv);
    free(s.tokens);
    s.tokens = NULL;
    if (i == 0)
        in->first = s;
    else
        free(s.sampler), free(s.settings);
    if (bad) return error_set(e, HDLM_EINVAL, "%s: sample %d %s", W, (int)o->ids[i], bad);
    return HDLM_OK;
}

/* The corpus whose training split gives the word vocabulary: data =, or the run's own (required
 * without a judge), then every sample: all of the same length, all of this run. */
static int read_input(const run *r, const run_gen_eval_opts *o, gen_input *in, error *e) {
    in->cor = o->data;
    if (!in->cor) {
        char *path = NULL;
        int rc = run_config_corpus(r->st, r->id, &path, e);
        if (rc != HDLM_OK) return rc;
        if (!path && !o->judge)
            return error_set(e, HDLM_EINVAL,
                             "%s: run %d records no corpus file in its config; pass data = "
                             "hdlm.corpus{...}",
                             W, (int)r->id);
        if (path) {
            rc = corpus_load(path, &in->own, e);
            free(path);
            if (rc != HDLM_OK) return rc;
            in->loaded = 1, in->cor = &in->own;
        }
    }
    in->n = o->n;
    in->V = o->judge ? run_real_tokens(o->judge) : in->cor->tok.vocab;
    if (o->n < 1)
        return error_set(e, HDLM_EINVAL, "%s: key 'samples' must list at least one sample", W);
    for (int i = 0; i < o->n; i++) {
        int rc = read_one(r, o, in, i, e);
        if (rc != HDLM_OK) return rc;
    }
    return HDLM_OK;
}

/* ---- the metrics -------------------------------------------------------------------------- */

typedef struct gen_stats {
    eval_result r; /* NLL under the judge */
    int judge_ar;
    double ppl_mean, ent_mean, ent_se, rep[5], distinct[5];
    double *ent; /* (n) */
    word_stats wst;
} gen_stats;

static void stats_free(gen_stats *g) {
    eval_result_free(&g->r);
    free(g->ent);
    free(g->wst.w);
}

/* NLL of every sample under the judge: its own schedule and layout, every step (exact for the
 * autoregressive schedule, one vectorised pass per batch). */
static int judge_nll(const run_gen_eval_opts *o, const gen_input *in, gen_stats *g, error *e) {
    const run *j = o->judge;
    eval_config ec = {j->layout.context,      j->layout.block_type, 0, -1, -1, 8, 0,
                      j->layout.context_width};
    if (j->h->flags & HDLM_INFO_CONTINUOUS) ec.mc = 64;
    int rc = eval_bound(j->m, j->h, j->noise->self, j->noise->ops, &ec, in->toks, in->n, in->len,
                        run_real_tokens(j), &g->r, e);
    if (rc != HDLM_OK) return rc;
    /* the judge's NLL is exact only under the autoregressive chain; otherwise a bound */
    g->judge_ar = schedule_is_autoregressive(j->h, in->len);
    if (!g->judge_ar)
        log_msg(HDLM_LOG_WARN,
                "%s: judge run %lld uses schedule '%s', which is not autoregressive: gen_nll "
                "is its bound, not an exact NLL (judge_exact = false); train the judge with "
                "the autoregressive schedule",
                W, (long long)j->id, j->h->name ? j->h->name : "?");
    return HDLM_OK;
}

/* Per-sample metrics and pooled diversity. */
static int text_stats(const run_gen_eval_opts *o, const gen_input *in, gen_stats *g, error *e) {
    int n = in->n, len = in->len;
    if (in->cor) {
        g->wst.w = calloc((size_t)n * 2, sizeof *g->wst.w);
        g->wst.k = g->wst.w ? g->wst.w + n : NULL;
        if (!g->wst.w || word_share_of(in->cor, in->toks, n, len, &g->wst) != 0)
            return error_set(e, HDLM_ENOMEM, "%s: out of memory for the corpus' words", W);
    }
    if (o->judge && judge_nll(o, in, g, e) != HDLM_OK) return e->code;
    uint64_t *keys = malloc((size_t)n * len * sizeof *keys);
    uint64_t *scr = malloc((size_t)len * sizeof *scr);
    g->ent = malloc((size_t)n * sizeof *g->ent);
    if (!keys || !scr || !g->ent) {
        free(keys), free(scr);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    }
    for (int i = 0; i < n; i++) {
        const int32_t *x = in->toks + (size_t)i * len;
        if (o->judge) g->ppl_mean += exp(g->r.per_seq[i] / len) / n;
        g->ent[i] = unigram_entropy(x, len, scr);
        g->ent_mean += g->ent[i] / n;
        for (int k = 2; k <= 4; k++) {
            int64_t m = pack_ngrams(x, len, k, scr);
            g->rep[k] += m ? (1.0 - (double)count_unique(scr, m) / (double)m) / n : 0;
        }
    }
    double ent_sq = 0;
    for (int i = 0; i < n; i++)
        ent_sq += (g->ent[i] - g->ent_mean) * (g->ent[i] - g->ent_mean);
    for (int k = 1; k <= 4; k++) {
        int64_t m = 0;
        for (int i = 0; i < n; i++)
            m += pack_ngrams(in->toks + (size_t)i * len, len, k, keys + m);
        g->distinct[k] = m ? (double)count_unique(keys, m) / (double)m : 0;
    }
    g->ent_se = n > 1 ? sqrt(ent_sq / (n - 1) / n) : NAN;
    free(keys), free(scr);
    return HDLM_OK;
}

static void put_results(const run_gen_eval_opts *o, const gen_input *in, const gen_stats *g,
                        record *res) {
    if (o->judge) {
        record_num(res, "gen_nll", g->r.nats);
        record_num(res, "gen_nll_se", g->r.se);
        record_num(res, "gen_ppl", exp(g->r.nats));
        record_num(res, "gen_ppl_mean", g->ppl_mean);
    }
    record_num(res, "entropy", g->ent_mean);
    record_num(res, "entropy_se", g->ent_se);
    for (int k = 1; k <= 4; k++) {
        char key[16];
        snprintf(key, sizeof key, "distinct_%d", k);
        record_num(res, key, g->distinct[k]);
        if (k >= 2) {
            snprintf(key, sizeof key, "rep_%d", k);
            record_num(res, key, g->rep[k]);
        }
    }
    if (g->wst.on) {
        record_num(res, "word_share", g->wst.share);
        record_num(res, "word_share_se", g->wst.se);
        record_int(res, "words", g->wst.words);
        record_int(res, "known_words", g->wst.known);
        record_int(res, "word_vocabulary", g->wst.vocabulary);
    }
    record_int(res, "n", in->n);
}

static void put_settings(const run_gen_eval_opts *o, const gen_input *in, const gen_stats *g,
                         record *set) {
    if (o->judge) {
        record_int(set, "judge_run", o->judge->id);
        char *hj = run_plugin_json(o->judge->sched, o->judge->h);
        record_json(set, "judge_schedule", hj);
        free(hj);
        record_bool(set, "judge_exact", g->r.exact && g->judge_ar);
    }
    record_int(set, "n_samples", in->n);
    record_int(set, "length", in->len);
    record_int(set, "first_sample", o->ids[0]);
    record_int(set, "last_sample", o->ids[in->n - 1]);
    record_int(set, "steps", in->first.steps);
    record_int(set, "nfe", in->first.nfe);
    if (o->judge)
        record_str(set, "conventions",
                   "nll over all tokens incl. the first; gen_ppl = exp(token mean), "
                   "gen_ppl_mean = mean of per-sample exp(nll)");
    if (g->wst.on) {
        record_int(set, "word_vocabulary", g->wst.vocabulary);
        record_int(set, "words", g->wst.words);
        record_str(set, "word_share_definition",
                   "word_share = known / words pooled over samples; words: pieces between "
                   "whitespace not touching the sample's edges, leading/trailing non-"
                   "alphanumerics stripped, lower-cased, empty ignored; known: in the "
                   "words of the corpus' training split");
    }
    if (in->first.sampler) record_json(set, "sampler", in->first.sampler);
    /* temperature, top_k, top_p, draws (float64), cache, ... */
    if (in->first.settings) record_merge_object(set, in->first.settings);
    if (o->label) record_str(set, "label", o->label);
}

/* The evaluation rows: gen_nll keeps each sample's NLL per token as its items (in the order of
 * `samples`), word_share each sample's share (when every sample has a word). */
static int store_rows(const run *r, const run_gen_eval_opts *o, const gen_input *in,
                      const gen_stats *g, const char *sj, error *e) {
    int n = in->n, len = in->len, has_judge = o->judge != NULL;
    const word_stats *w = &g->wst;
    struct {
        const char *k;
        double v, se;
        int on;
    } rows[] = {{"gen_nll", g->r.nats, g->r.se, has_judge},
                {"gen_ppl", exp(g->r.nats), NAN, has_judge},
                {"gen_ppl_mean", g->ppl_mean, NAN, has_judge},
                {"entropy", g->ent_mean, g->ent_se, 1},
                {"distinct_1", g->distinct[1], NAN, 1},
                {"distinct_2", g->distinct[2], NAN, 1},
                {"distinct_3", g->distinct[3], NAN, 1},
                {"distinct_4", g->distinct[4], NAN, 1},
                {"rep_2", g->rep[2], NAN, 1},
                {"rep_3", g->rep[3], NAN, 1},
                {"rep_4", g->rep[4], NAN, 1},
                {"word_share", w->share, w->se, w->on}};
    int64_t ck = 0;
    int rc = run_latest_checkpoint(r->st, r->id, &ck, e);
    double *items = malloc((size_t)n * 2 * sizeof *items);
    if (rc == HDLM_OK && !items) rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    double *witems = items + n;
    int64_t n_witems = n; /* none when a sample has no word (items are numbers) */
    for (int i = 0; rc == HDLM_OK && i < n; i++) {
        items[i] = has_judge ? g->r.per_seq[i] / len : 0;
        witems[i] = w->on && w->w[i] ? (double)w->k[i] / (double)w->w[i] : 0;
        if (!w->on || !w->w[i]) n_witems = 0;
    }
    for (size_t k = 0; k < sizeof rows / sizeof *rows && rc == HDLM_OK; k++) {
        if (!rows[k].on) continue;
        int word = !strcmp(rows[k].k, "word_share");
        rc = store_evaluation_items(r->st, r->id, ck, rows[k].k, rows[k].v, rows[k].se, sj,
                                    word ? witems : items,
                                    word     ? n_witems
                                    : k == 0 ? n
                                             : 0,
                                    NULL, e);
    }
    free(items);
    return rc;
}

/* Each sample's own metrics, merged into its row. */
static int store_per_sample(const run *r, const run_gen_eval_opts *o, const gen_input *in,
                            const gen_stats *g, error *e) {
    int rc = HDLM_OK;
    const word_stats *w = &g->wst;
    for (int i = 0; i < in->n && rc == HDLM_OK; i++) {
        json_buf mj = {0};
        char num[128];
        json_buf_raw(&mj, "{");
        if (o->judge) {
            snprintf(num, sizeof num, "\"gen_nll\":%.17g,", g->r.per_seq[i] / in->len);
            json_buf_raw(&mj, num);
            snprintf(num, sizeof num, "\"gen_ppl\":%.17g,", exp(g->r.per_seq[i] / in->len));
            json_buf_raw(&mj, num);
            snprintf(num, sizeof num, "\"judge_run\":%lld,", (long long)o->judge->id);
            json_buf_raw(&mj, num);
        }
        if (w->on) {
            if (w->w[i]) {
                snprintf(num, sizeof num, "\"word_share\":%.17g,",
                         (double)w->k[i] / (double)w->w[i]);
                json_buf_raw(&mj, num);
            }
            snprintf(num, sizeof num, "\"words\":%lld,\"known_words\":%lld,", (long long)w->w[i],
                     (long long)w->k[i]);
            json_buf_raw(&mj, num);
        }
        snprintf(num, sizeof num, "\"entropy\":%.17g}", g->ent[i]);
        json_buf_raw(&mj, num);
        store_value pv[2] = {{.type = STORE_TEXT, .s = mj.data, .len = (int64_t)mj.len},
                             {.type = STORE_INT, .i = o->ids[i]}};
        rc = store_query_params(r->st,
                                "UPDATE samples SET metrics = json_patch(coalesce(metrics, "
                                "'{}'), ?1) WHERE id = ?2",
                                2, pv, NULL, NULL, e);
        json_buf_free(&mj);
    }
    return rc;
}

static int store_all(const run *r, const run_gen_eval_opts *o, const gen_input *in,
                     const gen_stats *g, const record *set, error *e) {
    json_buf sj = {0};
    int rc = record_write_json(set, &sj);
    if (rc != HDLM_OK) rc = error_set(e, rc, "%s: out of memory", W);
    if (rc == HDLM_OK) rc = store_rows(r, o, in, g, sj.data, e);
    if (rc == HDLM_OK) rc = store_per_sample(r, o, in, g, e);
    json_buf_free(&sj);
    return rc;
}

/* The per-sample arrays of the result. */
static int fill_arrays(const run_gen_eval_opts *o, const gen_input *in, const gen_stats *g,
                       run_gen_eval_result *out, error *e) {
    int n = in->n;
    out->n = n;
    out->has_judge = o->judge != NULL;
    out->has_words = g->wst.on;
    if (o->judge && !(out->per_sample_nll = malloc((size_t)n * sizeof *out->per_sample_nll)))
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    if (g->wst.on && !(out->per_sample_share = malloc((size_t)n * sizeof *out->per_sample_share)))
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    for (int i = 0; i < n; i++) {
        if (o->judge) out->per_sample_nll[i] = g->r.per_seq[i] / in->len;
        if (g->wst.on)
            out->per_sample_share[i] =
                g->wst.w[i] ? (double)g->wst.k[i] / (double)g->wst.w[i] : NAN;
    }
    return HDLM_OK;
}

int run_gen_eval(const run *r, const run_gen_eval_opts *o, run_gen_eval_result *out, error *e) {
    memset(out, 0, sizeof *out);
    gen_input in = {0};
    gen_stats g = {0};
    int rc = read_input(r, o, &in, e);
    if (rc == HDLM_OK) rc = text_stats(o, &in, &g, e);
    if (rc == HDLM_OK) {
        put_results(o, &in, &g, &out->res);
        put_settings(o, &in, &g, &out->settings);
        if (out->res.failed || out->settings.failed)
            rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    }
    if (rc == HDLM_OK && o->store) rc = store_all(r, o, &in, &g, &out->settings, e);
    if (rc == HDLM_OK) rc = fill_arrays(o, &in, &g, out, e);
    if (rc != HDLM_OK) run_gen_eval_result_free(out);
    stats_free(&g);
    input_free(&in);
    return rc;
}

void run_gen_eval_result_free(run_gen_eval_result *r) {
    record_free(&r->res);
    record_free(&r->settings);
    free(r->per_sample_nll);
    free(r->per_sample_share);
    memset(r, 0, sizeof *r);
}
