/* run:sample / hdlm sample: sampling through a sampler plugin, stored sample by sample. */
#include "run/run_sample.h"

#include "base/json.h"
#include "diffusion/sample.h"
#include "nn/mask.h"

#include <stdlib.h>
#include <string.h>

#define W "run:sample"

const char *const run_sample_keys[] = {"sampler", "n",        "length", "temperature", "top_k",
                                       "top_p",   "prompt",   "infill", "seed",        "cache",
                                       "events",  "schedule", NULL};

void run_sample_defaults(run_sample_opts *o) {
    memset(o, 0, sizeof *o);
    o->sampler = "ancestral";
    o->n = 1;
    o->temperature = 1.0;
    o->top_p = 1.0;
    o->cache = 1;
    o->events = 1;
}

void run_sample_opts_free(run_sample_opts *o) {
    plugin_opts_free(o->sampler_opts);
    free(o->fixed_tok);
    free(o->fixed);
    o->sampler_opts = NULL, o->fixed_tok = NULL, o->fixed = NULL;
}

int run_sample_check(const run *r, run_sample_opts *o, error *e) {
    int seq_len = r->m->cfg.seq_len;
    if (o->n < 1 || o->n > 4096)
        return error_set(e, HDLM_EINVAL, "%s: key 'n' must be in 1..4096, got %d", W, o->n);
    if (o->length < 1 || o->length > seq_len)
        return error_set(e, HDLM_EINVAL,
                         "%s: key 'length' must be in 1..%d (the model's seq_len), got %d", W,
                         seq_len, o->length);
    if (o->temperature < 0)
        return error_set(e, HDLM_EINVAL, "%s: key 'temperature' must be >= 0", W);
    if (o->top_k < 0) return error_set(e, HDLM_EINVAL, "%s: key 'top_k' must be >= 0", W);
    if (!(o->top_p > 0 && o->top_p <= 1))
        return error_set(e, HDLM_EINVAL, "%s: key 'top_p' must be in (0, 1], got %f", W, o->top_p);
    free(o->fixed_tok), free(o->fixed);
    o->fixed_tok = calloc((size_t)o->length, sizeof *o->fixed_tok);
    o->fixed = calloc((size_t)o->length, 1);
    if (!o->fixed_tok || !o->fixed) return error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    return HDLM_OK;
}

int run_sample_fix(run_sample_opts *o, const int32_t *ids, int n, int at, int is_prompt, error *e) {
    if (is_prompt && n > o->length)
        return error_set(e, HDLM_EINVAL, "%s: prompt has %d tokens, longer than length %d", W, n,
                         o->length);
    if (!is_prompt && (n < 1 || at + n > o->length))
        return error_set(e, HDLM_EINVAL, "%s: infill at %d does not fit in length %d", W, at + 1,
                         o->length);
    for (int i = 0; i < n; i++)
        o->fixed_tok[at + i] = ids[i], o->fixed[at + i] = 1;
    return HDLM_OK;
}

int run_encode(const run *r, const char *text, size_t len, const char *what, int32_t **ids, int *n,
               error *e) {
    if (!r->tok.kind)
        return error_set(e, HDLM_EINVAL, "%s: the model has no tokenizer; give token ids", what);
    *ids = malloc((len ? len : 1) * sizeof **ids);
    int64_t m = *ids ? tokenizer_encode(&r->tok, text, len, *ids) : -1;
    if (m < 0) {
        free(*ids), *ids = NULL;
        return error_set(e, HDLM_ENOMEM, "%s: out of memory encoding %d bytes", what, (int)len);
    }
    *n = (int)m;
    return HDLM_OK;
}

/* The settings stored with every sample of the call. */
static void settings_json(const run *r, const run_sample_opts *o, const hyper *h, int cache_used,
                          int any_fixed, char *out, size_t cap) {
    /* the tokenizer's name quoted as JSON: a bpe:DIR path may hold any character */
    json_buf tj = {0};
    json_buf_str(&tj, r->tok.kind ? tokenizer_label(&r->tok) : "none");
    snprintf(out, cap,
             "{\"temperature\":%.17g,\"top_k\":%d,\"top_p\":%.17g,\"length\":%d,\"cache\":%s,"
             "\"kv_cache_used\":%s,\"draws\":\"float64 inverse CDF\",\"weights\":\"ema\","
             "\"fixed_positions\":%s,\"tokenizer\":%s,\"context\":\"%s\","
             "\"block_type\":\"%s\",\"context_width\":%d}",
             o->temperature, o->top_k, o->top_p, o->length, o->cache ? "true" : "false",
             cache_used ? "true" : "false", any_fixed ? "true" : "false",
             tj.data ? tj.data : "\"none\"", mask_context_name(r->layout.context),
             r->layout.block_type == MASK_BLOCK_CAUSAL ? "causal" : "full",
             hyper_mask_width(h, o->length, r->layout.context_width));
    json_buf_free(&tj);
}

typedef struct store_ctx {
    const char *sampler, *schedule, *noise, *settings;
    int64_t ck_id;
} store_ctx;

/* Stores sample b of res; fills its item. */
static int store_one(const run *r, const run_sample_opts *o, const sample_result *res,
                     const store_ctx *sc, int b, store_event *ev, run_sample_item *it, error *e) {
    int L = o->length;
    const int32_t *ids = res->tokens + (size_t)b * L;
    size_t cap = tokenizer_decode_cap(&r->tok, (size_t)L);
    if (!(it->text = malloc(cap))) return error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    tokenizer_decode(&r->tok, ids, (size_t)L, it->text, cap);
    int64_t ne = 0, corrections = 0;
    for (int64_t k = 0; k < res->n_events; k++) {
        const sample_event *se = &res->events[k];
        if (se->b != b) continue;
        ev[ne++] = (store_event){se->step, se->pos, se->old_tok, se->new_tok, se->prob, se->kind};
        corrections += se->kind == HDLM_EVENT_CORRECT;
    }
    store_sample_info si = {
        .run_id = r->id,
        .checkpoint_id = sc->ck_id,
        .text = it->text,
        .tokens = ids,
        .n_tokens = L,
        .sampler = sc->sampler,
        .schedule = sc->schedule,
        .noise = sc->noise,
        .settings_json = sc->settings,
        .seed = (int64_t)o->seed,
        .steps = res->steps,
        .nfe = res->nfe,
        .wall_time = res->wall / o->n,
    };
    it->corrections = corrections;
    it->events = ne;
    return store_sample(r->st, &si, ev, ne, &it->id, e);
}

/* Stores every sample of res (the checkpoint the weights came from: the run's newest, what
 * db:train ended with and what run_load brings back). */
static int store_all(const run *r, const run_sample_opts *o, const plugin_instance *sampler,
                     const sample_result *res, int any_fixed, run_samples *out, error *e) {
    const hyper *h = o->h ? o->h : r->h;
    const plugin_instance *sp = o->h ? o->sched : r->sched;
    store_ctx sc = {0};
    int rc = run_latest_checkpoint(r->st, r->id, &sc.ck_id, e);
    char *nj = run_plugin_json(r->noise, NULL), *sj = run_plugin_json(sampler, NULL);
    char *hj = run_plugin_json(sp, h);
    char settings[5120];
    settings_json(r, o, h, res->cache_used, any_fixed, settings, sizeof settings);
    sc.sampler = sj, sc.schedule = hj, sc.noise = nj, sc.settings = settings;
    store_event *ev = malloc(((size_t)res->n_events + 1) * sizeof *ev);
    out->items = calloc((size_t)o->n, sizeof *out->items);
    if (rc == HDLM_OK && (!ev || !out->items || !nj || !sj || !hj))
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    for (int b = 0; b < o->n && rc == HDLM_OK; b++) {
        rc = store_one(r, o, res, &sc, b, ev, &out->items[b], e);
        out->items[b].tokens = res->tokens + (size_t)b * o->length;
        out->n = b + 1;
    }
    free(ev), free(nj), free(sj), free(hj);
    return rc;
}

int run_sample(const run *r, plugin_registry *reg, run_sample_opts *o, run_samples *out, error *e) {
    memset(out, 0, sizeof *out);
    int any_fixed = 0;
    for (int i = 0; o->fixed && i < o->length; i++)
        any_fixed |= o->fixed[i];
    sample_config cfg = {
        .B = o->n,
        .L = o->length,
        .seed = o->seed,
        .temperature = o->temperature,
        .top_k = o->top_k,
        .top_p = o->top_p,
        .cache = o->cache,
        .context = r->layout.context,
        .block_type = r->layout.block_type,
        .fixed_tok = any_fixed ? o->fixed_tok : NULL,
        .fixed = any_fixed ? o->fixed : NULL,
        .record_events = o->events,
        .context_width = r->layout.context_width,
    };
    plugin_instance *sampler = NULL;
    plugin_opts *so = o->sampler_opts ? o->sampler_opts : plugin_opts_new();
    o->sampler_opts = NULL;
    /* the sampler learns the noise process's V and mask at creation */
    plugin_create_args sa = {.vocab = run_real_tokens(r),
                             .n_extra = r->noise->info.n_extra,
                             .mask_id = r->noise->info.mask_id};
    int rc = so ? plugin_instance_create(reg, HDLM_KIND_SAMPLER, o->sampler, so, &sa, &sampler, e)
                : error_set(e, HDLM_ENOMEM, "%s: out of memory", W);
    sample_result res = {0};
    if (rc == HDLM_OK)
        rc = sample_run(r->m, o->h ? o->h : r->h, r->noise->self, r->noise->ops,
                        r->noise->entry->desc->name, sampler->self, sampler->ops, o->sampler, &cfg,
                        &res, e);
    if (rc == HDLM_OK) rc = store_all(r, o, sampler, &res, any_fixed, out, e);
    if (rc == HDLM_OK) {
        out->length = o->length;
        out->tokens = res.tokens;
        res.tokens = NULL;
        for (int b = 0; b < out->n; b++)
            out->items[b].tokens = out->tokens + (size_t)b * o->length;
        out->nfe = res.nfe, out->steps = res.steps, out->wall = res.wall;
    } else {
        run_samples_free(out);
    }
    sample_result_free(&res);
    plugin_instance_destroy(sampler);
    run_sample_opts_free(o);
    return rc;
}

void run_samples_free(run_samples *s) {
    for (int i = 0; s->items && i < s->n; i++)
        free(s->items[i].text);
    free(s->items);
    free(s->tokens);
    memset(s, 0, sizeof *s);
}
