/* The run object: bringing a stored run back (replaces scripts/hdlm_run.lua), a model from a
 * checkpoint file, and the plugin instances a run is made of. */
#include "run/run.h"

#include "base/json.h"
#include "base/text.h"
#include "diffusion/train.h"
#include "nn/mask.h"
#include "nn/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small store readers ---------------------------------------------------------------- */

static int first_int(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    if (ncol >= 1 && vals[0].type == STORE_INT) *(int64_t *)ud = vals[0].i;
    return 1;
}

int run_latest_checkpoint(store *st, int64_t id, int64_t *ckpt_id, error *e) {
    store_value p = {.type = STORE_INT, .i = id};
    *ckpt_id = 0;
    return store_query_params(st,
                              "SELECT id FROM checkpoints WHERE run_id = ? ORDER BY step DESC, id "
                              "DESC LIMIT 1",
                              1, &p, first_int, ckpt_id, e);
}

static int first_text(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    char **s = ud;
    if (ncol >= 1 && vals[0].type == STORE_TEXT && !*s) *s = strdup(vals[0].s);
    return 1;
}

int run_config_corpus(store *st, int64_t id, char **path, error *e) {
    store_value p = {.type = STORE_INT, .i = id};
    *path = NULL;
    return store_query_params(st, "SELECT json_extract(config, '$.data') FROM runs WHERE id = ?", 1,
                              &p, first_text, path, e);
}

/* ---- plugins ---------------------------------------------------------------------------- */

int run_noise_new(plugin_registry *reg, const char *name, plugin_opts *opts, int32_t vocab,
                  const char *what, plugin_instance **out, error *e) {
    *out = NULL;
    /* V is a creation argument (vocab <= 0: the option set's "vocab", as stored with a run); the
     * host checks the facts the instance reports (n_extra, mask id) */
    plugin_create_args args = {.vocab = vocab > 0 ? vocab : 0, .n_extra = -1, .mask_id = -1};
    error ce = {0};
    if (plugin_instance_create(reg, HDLM_KIND_NOISE, name, opts, &args, out, &ce) != HDLM_OK)
        return error_set(e, ce.code, "%s: %s", what, ce.msg);
    return HDLM_OK;
}

int run_schedule_new(plugin_registry *reg, const char *name, plugin_opts *opts,
                     plugin_instance **out, hyper *h, error *e) {
    int rc = plugin_instance_create(reg, HDLM_KIND_SCHEDULE, name, opts, NULL, out, e);
    if (rc != HDLM_OK) return rc;
    /* continuous time is the instance's own fact (its info op), read by hyper_from_plugin */
    hyper_from_plugin(h, (*out)->self, (*out)->ops, (*out)->entry->desc->name);
    return HDLM_OK;
}

char *run_plugin_json(const plugin_instance *pi, const hyper *h) {
    json_buf jb = {0};
    if (!pi) {
        json_buf_raw(&jb, "{\"name\":");
        json_buf_str(&jb, h && h->name ? h->name : "lua");
        json_buf_raw(&jb, ",\"version\":\"lua\",\"options\":{}}");
        return jb.failed ? (json_buf_free(&jb), NULL) : jb.data;
    }
    char *opts = plugin_opts_json(pi->opts);
    json_buf_raw(&jb, "{\"name\":");
    json_buf_str(&jb, pi->entry->desc->name);
    json_buf_raw(&jb, ",\"version\":");
    json_buf_str(&jb, pi->entry->desc->version);
    json_buf_raw(&jb, ",\"options\":");
    json_buf_raw(&jb, opts ? opts : "{}");
    /* the content hash of the loaded .so: a rebuilt plugin shows in samples and evaluations */
    if (pi->entry->hash && pi->entry->hash[0]) {
        json_buf_raw(&jb, ",\"sha256\":");
        json_buf_str(&jb, pi->entry->hash);
    }
    json_buf_raw(&jb, "}");
    free(opts);
    if (jb.failed) {
        json_buf_free(&jb);
        return NULL;
    }
    return jb.data;
}

int run_opts_from_json(const char *json, plugin_opts **out, error *e) {
    *out = plugin_opts_new();
    if (!*out) return error_set(e, HDLM_ENOMEM, "out of memory");
    if (!json) return HDLM_OK;
    json_value *v = NULL;
    int rc = json_parse(json, strlen(json), &v, e);
    for (size_t i = 0; rc == HDLM_OK && i < json_len(v); i++) {
        const char *k = json_key_at(v, i);
        const json_value *x = json_value_at(v, i);
        if (json_type(x) == JSON_NUMBER)
            rc = plugin_opts_set_number(*out, k, json_number(x));
        else if (json_type(x) == JSON_BOOL)
            rc = plugin_opts_set_bool(*out, k, json_bool(x));
        else if (json_type(x) == JSON_STRING)
            rc = plugin_opts_set_string(*out, k, json_string(x));
        if (rc == HDLM_ENOMEM) error_set(e, rc, "out of memory");
    }
    json_free(v);
    if (rc != HDLM_OK) {
        plugin_opts_free(*out);
        *out = NULL;
    }
    return rc;
}

int run_check_key(const char *key, const char *const *allowed, const char *what, error *e) {
    size_t n = 0;
    for (; allowed[n]; n++)
        if (!strcmp(allowed[n], key)) return HDLM_OK;
    json_buf list = {0};
    for (size_t i = 0; i < n; i++) {
        if (i) json_buf_raw(&list, ", ");
        json_buf_raw(&list, allowed[i]);
    }
    const char *near = text_closest(key, allowed, n);
    if (near)
        error_set(e, HDLM_EINVAL, "%s: unknown key '%s' (did you mean '%s'?); allowed: %s", what,
                  key, near, list.data ? list.data : "");
    else
        error_set(e, HDLM_EINVAL, "%s: unknown key '%s'; allowed: %s", what, key,
                  list.data ? list.data : "");
    json_buf_free(&list);
    return HDLM_EINVAL;
}

/* ---- a model from a checkpoint ------------------------------------------------------------ */

static void get_int(const json_value *v, const char *k, int *dst) {
    const json_value *x = json_get(v, k);
    if (x && json_type(x) == JSON_NUMBER) *dst = (int)json_number(x);
}

/* The config of the checkpoint's "config" metadata: sizes, tokenizer (checked against the
 * vocabulary it was trained with) and objective. */
static int read_ckpt_config(const char *path, st_file *f, model_config *mc, tokenizer *tok,
                            int *objective, error *e) {
    const char *cj = st_meta(f, "config");
    json_value *v = NULL;
    if (!cj)
        return error_set(e, HDLM_EINVAL, "%s: no 'config' metadata (not an hdlm checkpoint?)",
                         path);
    if (json_parse(cj, strlen(cj), &v, e) != HDLM_OK) return e->code;
    get_int(v, "vocab", &mc->vocab);
    get_int(v, "d_model", &mc->d_model);
    get_int(v, "n_layer", &mc->n_layer);
    get_int(v, "n_head", &mc->n_head);
    get_int(v, "seq_len", &mc->seq_len);
    get_int(v, "cond", &mc->cond);
    const json_value *gm = json_get(v, "gamma");
    if (gm && json_type(gm) == JSON_NUMBER) mc->mix_gamma = (float)json_number(gm);
    const json_value *tk = json_get(v, "tokenizer"), *tsha = json_get(v, "tokenizer_sha256");
    /* a tokenizer that cannot be loaded here (a BPE directory gone) leaves the model without one
     * (ids only); one whose vocabulary changed since training is refused */
    *tok = (tokenizer){0};
    if (tk && json_type(tk) == JSON_STRING && tokenizer_init(tok, json_string(tk), NULL) != HDLM_OK)
        *tok = (tokenizer){0};
    int rc = HDLM_OK;
    if (tok->kind && json_type(tsha) == JSON_STRING &&
        strcmp(json_string(tsha), tokenizer_sha256(tok)))
        rc = error_set(e, HDLM_EINVAL,
                       "%s: trained with tokenizer %s (vocabulary SHA-256 %.16s...), but %s now "
                       "has vocabulary %.16s...",
                       path, json_string(tk), json_string(tsha), json_string(tk),
                       tokenizer_sha256(tok));
    const json_value *ob = json_get(v, "objective");
    *objective =
        ob && json_type(ob) == JSON_STRING ? train_objective_from_name(json_string(ob)) : 0;
    json_free(v);
    if (*objective == OBJ_MASK) mc->mask_id = mc->vocab - 1;
    /* the mask id follows the noise process: V real + extras */
    if (*objective == OBJ_METHOD)
        mc->mask_id = tok->vocab > 0 && tok->vocab < mc->vocab ? tok->vocab : -1;
    return rc;
}

int run_model_load(const char *path, model *m, tokenizer *tok, int *objective, error *e) {
    model_config mc = {.vocab = 256, .mask_id = -1};
    st_file *f = NULL;
    if (st_open(path, &f, e) != HDLM_OK) return e->code;
    int rc = read_ckpt_config(path, f, &mc, tok, objective, e);
    /* checkpoints record the forward pass's settings themselves (older ones do not): they win
     * over what the config and tokenizer name imply */
    const char *fj = rc == HDLM_OK ? st_meta(f, "model") : NULL;
    json_value *fv = NULL;
    if (fj && (rc = json_parse(fj, strlen(fj), &fv, e)) == HDLM_OK) {
        const json_value *x;
        if ((x = json_get(fv, "mask_id")) && json_type(x) == JSON_NUMBER)
            mc.mask_id = (int)json_number(x);
        if ((x = json_get(fv, "mix_gamma")) && json_type(x) == JSON_NUMBER)
            mc.mix_gamma = (float)json_number(x);
        if ((x = json_get(fv, "cond")) && json_type(x) == JSON_NUMBER)
            mc.cond = (int)json_number(x);
        json_free(fv);
    }
    if (rc == HDLM_OK) rc = model_init(m, &mc, 0, e);
    for (int i = 0; rc == HDLM_OK && i < m->n_tensors; i++) {
        const model_tensor *mt = &m->tensors[i];
        rc = st_read_f32(f, mt->name, m->params + mt->offset, mt->ndim, mt->shape, e);
        if (rc != HDLM_OK) model_free(m);
    }
    st_close(f);
    return rc;
}

/* ---- bringing a stored run back ----------------------------------------------------------- */

typedef struct load_rows {
    int found;
    char *config;                      /* runs.config */
    char ck_path[1200];                /* newest checkpoint */
    int64_t ck_step;                   /* -1: none */
    char name[2][128], version[2][64]; /* [0] noise, [1] schedule; "" = not recorded */
    char *options[2];
} load_rows;

static char *dup_text(const store_value *v) {
    if (v->type != STORE_TEXT) return NULL;
    char *s = malloc((size_t)v->len + 1);
    if (s) memcpy(s, v->s, (size_t)v->len), s[v->len] = '\0';
    return s;
}

static int row_run(void *ud, int ncol, const char *const *names, const store_value *vals) {
    load_rows *r = ud;
    r->found = 1;
    r->config = dup_text(&vals[0]);
    return 1;
}

static int row_ckpt(void *ud, int ncol, const char *const *names, const store_value *vals) {
    load_rows *r = ud;
    snprintf(r->ck_path, sizeof r->ck_path, "%s", vals[0].s ? vals[0].s : "");
    r->ck_step = vals[1].i;
    return 1;
}

static int row_plugin(void *ud, int ncol, const char *const *names, const store_value *vals) {
    load_rows *r = ud;
    int k = vals[0].s && !strcmp(vals[0].s, "noise")      ? 0
            : vals[0].s && !strcmp(vals[0].s, "schedule") ? 1
                                                          : -1;
    if (k < 0) return 0;
    snprintf(r->name[k], sizeof r->name[k], "%s", vals[1].s ? vals[1].s : "");
    snprintf(r->version[k], sizeof r->version[k], "%s", vals[2].s ? vals[2].s : "");
    free(r->options[k]);
    r->options[k] = dup_text(&vals[3]);
    return 0;
}

/* The rows run_load needs, with its refusals in the order hdlm_run.lua gave them. */
static int load_read_rows(store *st, int64_t id, load_rows *r, error *e) {
    store_value p = {.type = STORE_INT, .i = id};
    int rc = store_query_params(st, "SELECT config FROM runs WHERE id = ?", 1, &p, row_run, r, e);
    if (rc != HDLM_OK) return rc;
    if (!r->found)
        return error_set(e, HDLM_EINVAL, "no run %lld in %s", (long long)id, store_path(st));
    r->ck_step = -1;
    rc = store_query_params(st,
                            "SELECT path, step FROM checkpoints WHERE run_id = ? ORDER BY step "
                            "DESC LIMIT 1",
                            1, &p, row_ckpt, r, e);
    if (rc != HDLM_OK) return rc;
    if (r->ck_step < 0)
        return error_set(e, HDLM_EINVAL,
                         "run %lld has no checkpoint; train with checkpoint_dir = ... and "
                         "ckpt_every = N to sample or evaluate it later",
                         (long long)id);
    rc = store_query_params(st,
                            "SELECT kind, name, version, options FROM run_plugins WHERE run_id = ?",
                            1, &p, row_plugin, r, e);
    if (rc != HDLM_OK) return rc;
    if (!r->name[0][0] || !r->name[1][0])
        return error_set(
            e, HDLM_EINVAL,
            "run %lld was not trained with a noise process and a schedule (objective "
            "'ar'/'mask' models sample with hdlm.model{checkpoint = ...}:generate{...})",
            (long long)id);
    if (!strcmp(r->version[1], "lua"))
        return error_set(e, HDLM_EINVAL,
                         "run %lld used a schedule written in Lua ('%s'); attach it yourself with "
                         "db:attach{...}",
                         (long long)id, r->name[1]);
    return HDLM_OK;
}

/* The layout of the run's config (the defaults of runs that record none). */
static int load_layout(const char *config, run_layout *lay, error *e) {
    lay->context = MASK_CTX_BLOCK_CAUSAL;
    lay->block_type = MASK_BLOCK_FULL;
    lay->context_width = 0;
    json_value *v = NULL;
    if (!config || json_parse(config, strlen(config), &v, NULL) != HDLM_OK) return HDLM_OK;
    const json_value *c = json_get(v, "context"), *b = json_get(v, "block_type"),
                     *w = json_get(v, "context_width");
    int rc = HDLM_OK;
    if (json_type(c) == JSON_STRING && (lay->context = mask_context_from_name(json_string(c))) < 0)
        rc = error_set(e, HDLM_EINVAL, "run config: context must be full, causal or block_causal");
    if (json_type(b) == JSON_STRING && (lay->block_type = mask_block_from_name(json_string(b))) < 0)
        rc = error_set(e, HDLM_EINVAL, "run config: block_type must be full or causal");
    if (json_type(w) == JSON_NUMBER) lay->context_width = (int)json_number(w);
    json_free(v);
    return rc;
}

/* The stored noise spec's vocab must be the one the model needs (as db:attach checks). */
static int load_noise(load_rows *rows, plugin_registry *reg, int32_t V, run *out, error *e) {
    plugin_opts *o = NULL;
    if (run_opts_from_json(rows->options[0], &o, e) != HDLM_OK) return e->code;
    double given;
    if (V > 0 && plugin_opts_number(o, "vocab", &given) == HDLM_OK && given != (double)V) {
        plugin_opts_free(o);
        return error_set(e, HDLM_EINVAL,
                         "noise: the spec says vocab = %g but the data has %d tokens", given,
                         (int)V);
    }
    return run_noise_new(reg, rows->name[0], o, V, "noise", &out->noise, e);
}

int run_load(store *st, int64_t id, plugin_registry *reg, run *out, error *e) {
    memset(out, 0, sizeof *out);
    load_rows rows = {0};
    int rc = load_read_rows(st, id, &rows, e);
    /* EMA weights when the checkpoint saved them */
    char path[1300];
    size_t pl = strlen(rows.ck_path);
    if (pl > 12 && !strcmp(rows.ck_path + pl - 12, ".safetensors"))
        snprintf(path, sizeof path, "%.*s.ema.safetensors", (int)(pl - 12), rows.ck_path);
    else
        snprintf(path, sizeof path, "%s", rows.ck_path);
    FILE *f = rc == HDLM_OK ? fopen(path, "rb") : NULL;
    if (f)
        fclose(f);
    else
        snprintf(path, sizeof path, "%s", rows.ck_path);
    int objective = 0;
    if (rc == HDLM_OK && !(out->own_model = calloc(1, sizeof *out->own_model)))
        rc = error_set(e, HDLM_ENOMEM, "out of memory");
    if (rc == HDLM_OK && (rc = run_model_load(path, out->own_model, &out->tok, &objective, e)))
        free(out->own_model), out->own_model = NULL;
    out->m = out->own_model;
    if (rc == HDLM_OK) rc = load_layout(rows.config, &out->layout, e);
    if (rc == HDLM_OK) {
        const model *m = out->m;
        int32_t V =
            m->cfg.mask_id >= 0 ? m->cfg.mask_id : (out->tok.vocab ? out->tok.vocab : m->cfg.vocab);
        rc = load_noise(&rows, reg, V, out, e);
    }
    plugin_opts *so = NULL;
    if (rc == HDLM_OK) rc = run_opts_from_json(rows.options[1], &so, e);
    if (rc == HDLM_OK)
        rc = run_schedule_new(reg, rows.name[1], so, &out->own_sched, &out->own_h, e);
    if (rc == HDLM_OK) {
        out->h = &out->own_h;
        out->sched = out->own_sched;
        out->st = st;
        out->id = id;
        out->ckpt_step = rows.ck_step;
        out->objective = objective;
        snprintf(out->ckpt_path, sizeof out->ckpt_path, "%s", rows.ck_path);
    }
    free(rows.config), free(rows.options[0]), free(rows.options[1]);
    if (rc != HDLM_OK) run_free(out);
    return rc;
}

void run_free(run *r) {
    plugin_instance_destroy(r->noise);
    plugin_instance_destroy(r->own_sched);
    if (r->own_model) {
        model_free(r->own_model);
        free(r->own_model);
    }
    memset(r, 0, sizeof *r);
}

int32_t run_real_tokens(const run *r) {
    return r->m->cfg.vocab - r->noise->info.n_extra;
}
