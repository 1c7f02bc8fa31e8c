/* `hdlm sample` and `hdlm eval` (run_cmds.h): argument typing, then core/run does the work. */
#include "app/run_cmds.h"

#include "data/tokfile.h"
#include "run/run_eval.h"
#include "run/run_sample.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- key=value typing -------------------------------------------------------------------- */

enum { ARG_STR, ARG_INT, ARG_NUM, ARG_BOOL };

typedef struct arg {
    char key[64];
    const char *text;
    int kind;
    int64_t i;
    double d;
} arg;

/* As `hdlm run` reads script arguments: true/false, a number (integer or float syntax), else
 * text. */
static void arg_parse(const char *kv, arg *a) {
    const char *eq = strchr(kv, '=');
    snprintf(a->key, sizeof a->key, "%.*s", (int)(eq - kv), kv);
    a->text = eq + 1;
    a->kind = ARG_STR;
    const char *v = a->text;
    char *end;
    if (!strcmp(v, "true") || !strcmp(v, "false")) {
        a->kind = ARG_BOOL, a->i = !strcmp(v, "true");
        return;
    }
    const char *p = v;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '-' || *p == '+') p++;
    if (!*p || isalpha((unsigned char)*p)) return; /* no inf / nan: text, as in Lua */
    long long iv = strtoll(v, &end, 0);
    while (isspace((unsigned char)*end))
        end++;
    if (!*end && end != v) {
        a->kind = ARG_INT, a->i = iv, a->d = (double)iv;
        return;
    }
    double dv = strtod(v, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (!*end && end != v) a->kind = ARG_NUM, a->d = dv;
}

static const char *kind_name(int kind) {
    return kind == ARG_BOOL ? "boolean" : kind == ARG_STR ? "string" : "number";
}

static int want_int(const arg *a, const char *what, int64_t *out, error *e) {
    if (a->kind == ARG_INT) {
        *out = a->i;
        return HDLM_OK;
    }
    if (a->kind == ARG_NUM && a->d == floor(a->d) && fabs(a->d) < 9.2e18) {
        *out = (int64_t)a->d;
        return HDLM_OK;
    }
    if (a->kind == ARG_NUM)
        return error_set(e, HDLM_EINVAL, "%s: key '%s' must be an integer, got %.14g", what, a->key,
                         a->d);
    return error_set(e, HDLM_EINVAL, "%s: key '%s' must be an integer, got %s", what, a->key,
                     kind_name(a->kind));
}

static int want_num(const arg *a, const char *what, double *out, error *e) {
    if (a->kind != ARG_INT && a->kind != ARG_NUM)
        return error_set(e, HDLM_EINVAL, "%s: key '%s' must be a number, got %s", what, a->key,
                         kind_name(a->kind));
    if (!isfinite(a->d))
        return error_set(e, HDLM_EINVAL, "%s: key '%s' must be finite, got %f", what, a->key, a->d);
    *out = a->d;
    return HDLM_OK;
}

static int want_bool(const arg *a, const char *what, int *out, error *e) {
    if (a->kind != ARG_BOOL)
        return error_set(e, HDLM_EINVAL, "%s: key '%s' must be a boolean, got %s", what, a->key,
                         kind_name(a->kind));
    *out = (int)a->i;
    return HDLM_OK;
}

static int want_str(const arg *a, const char *what, const char **out, error *e) {
    if (a->kind != ARG_STR)
        return error_set(e, HDLM_EINVAL, "%s: key '%s' must be a string, got %s", what, a->key,
                         kind_name(a->kind));
    *out = a->text;
    return HDLM_OK;
}

/* ---- the stored run ------------------------------------------------------------------------ */

typedef struct cmd_ctx {
    store *st;
    plugin_registry *reg;
    run r;
    int loaded;
    int64_t id;
} cmd_ctx;

static int cmd_open(const char *db, const char *run_id, cmd_ctx *c, error *e) {
    memset(c, 0, sizeof *c);
    arg a;
    char kv[600];
    snprintf(kv, sizeof kv, "run=%s", run_id);
    arg_parse(kv, &a);
    if (a.kind != ARG_INT && !(a.kind == ARG_NUM && a.d == floor(a.d)))
        return error_set(e, HDLM_EINVAL, "run id must be an integer, got %s", run_id);
    c->id = a.kind == ARG_INT ? a.i : (int64_t)a.d;
    int rc = store_open(db, 0, &c->st, e);
    if (rc == HDLM_OK) rc = store_reap_runs(c->st, e);
    if (rc == HDLM_OK) rc = plugin_registry_open(&c->reg, e);
    char refusals[8192] = "";
    if (rc == HDLM_OK && plugin_registry_load_default(c->reg, refusals, sizeof refusals, e) < 0)
        rc = e->code ? e->code : HDLM_EPLUGIN;
    if (rc == HDLM_OK && (rc = run_load(c->st, c->id, c->reg, &c->r, e)) == HDLM_OK) c->loaded = 1;
    return rc;
}

static void cmd_close(cmd_ctx *c) {
    if (c->loaded) run_free(&c->r);
    store_close(c->st); /* the run's rows are flushed before its plugins are unloaded */
    plugin_registry_close(c->reg);
}

/* ---- hdlm sample ---------------------------------------------------------------------------- */

#define WS "run:sample"

/* One key=value of hdlm sample: a run:sample option, the sampler, or a sampler option. */
static int sample_arg(const run *r, const arg *a, run_sample_opts *o, const char **prompt,
                      error *e) {
    int64_t v;
    int rc = HDLM_OK;
    const char *k = a->key;
    if (!strcmp(k, "n") && (rc = want_int(a, WS, &v, e)) == HDLM_OK) o->n = (int)v;
    if (!strcmp(k, "length") && (rc = want_int(a, WS, &v, e)) == HDLM_OK) o->length = (int)v;
    if (!strcmp(k, "top_k") && (rc = want_int(a, WS, &v, e)) == HDLM_OK) o->top_k = (int)v;
    if (!strcmp(k, "seed") && (rc = want_int(a, WS, &v, e)) == HDLM_OK) o->seed = (uint64_t)v;
    if (!strcmp(k, "temperature")) rc = want_num(a, WS, &o->temperature, e);
    if (!strcmp(k, "top_p")) rc = want_num(a, WS, &o->top_p, e);
    if (!strcmp(k, "cache")) rc = want_bool(a, WS, &o->cache, e);
    if (!strcmp(k, "events")) rc = want_bool(a, WS, &o->events, e);
    if (!strcmp(k, "prompt")) *prompt = a->text; /* a number is a text too */
    if (!strcmp(k, "sampler")) o->sampler = a->text;
    static const char *const own[] = {"n",           "length",  "top_k", "seed",
                                      "temperature", "top_p",   "cache", "events",
                                      "prompt",      "sampler", "run",   NULL};
    int mine = 0;
    for (const char *const *x = own; *x; x++)
        mine |= !strcmp(*x, k);
    if (!mine && plugin_opts_set_text(o->sampler_opts, k, a->text) != HDLM_OK)
        rc = error_set(e, HDLM_ENOMEM, "out of memory");
    (void)r;
    return rc;
}

static void print_samples(const cmd_ctx *c, const char *sampler, const run_samples *s) {
    for (int b = 0; b < s->n; b++) {
        const run_sample_item *it = &s->items[b];
        printf("-- sample %lld (run %lld, step %lld checkpoint; %s; %lld steps, %lld network "
               "evaluations, %lld corrections, %.2f s)\n",
               (long long)it->id, (long long)c->id, (long long)c->r.ckpt_step, sampler,
               (long long)s->steps, (long long)s->nfe, (long long)it->corrections, s->wall);
        printf("%s\n", it->text);
    }
}

static int sample_with(cmd_ctx *c, int argc, char **args, error *e) {
    run_sample_opts o;
    run_sample_defaults(&o);
    o.length = c->r.m->cfg.seq_len;
    o.sampler_opts = plugin_opts_new();
    const char *prompt = NULL;
    int rc = o.sampler_opts ? HDLM_OK : error_set(e, HDLM_ENOMEM, "out of memory");
    for (int i = 0; i < argc && rc == HDLM_OK; i++) {
        arg a;
        arg_parse(args[i], &a);
        rc = sample_arg(&c->r, &a, &o, &prompt, e);
    }
    const char *sampler = o.sampler;
    if (rc == HDLM_OK) rc = run_sample_check(&c->r, &o, e);
    if (rc == HDLM_OK && prompt) {
        int32_t *ids = NULL;
        int n = 0;
        rc = run_encode(&c->r, prompt, strlen(prompt), "run:sample prompt", &ids, &n, e);
        if (rc == HDLM_OK) rc = run_sample_fix(&o, ids, n, 0, 1, e);
        free(ids);
    }
    run_samples s = {0};
    if (rc == HDLM_OK) rc = run_sample(&c->r, c->reg, &o, &s, e);
    if (rc == HDLM_OK) print_samples(c, sampler, &s);
    run_samples_free(&s);
    run_sample_opts_free(&o);
    return rc;
}

int run_cmd_sample(const char *db, const char *run_id, int argc, char **args, error *e) {
    cmd_ctx c;
    int rc = cmd_open(db, run_id, &c, e);
    if (rc == HDLM_OK) rc = sample_with(&c, argc, args, e);
    cmd_close(&c);
    return rc;
}

/* ---- hdlm eval ------------------------------------------------------------------------------ */

#define WE "run:eval"

/* The keys of run:eval that take a Lua value (a Schedule, a Model, token tables). */
static int lua_only(const arg *a, error *e) {
    if (!strcmp(a->key, "schedule"))
        return error_set(e, HDLM_EINVAL,
                         "schedule must be a Schedule (hdlm.schedule{...}) or a table like "
                         "{\"block_annealing\", width = 4}, got %s",
                         kind_name(a->kind));
    return error_set(e, HDLM_EINVAL,
                     "%s: key '%s' takes a Lua value (use it from hdlm run), got %s", WE, a->key,
                     kind_name(a->kind));
}

static int eval_arg(const arg *a, run_eval_opts *o, const char **data, error *e) {
    const char *k = a->key;
    int rc = run_check_key(k, run_eval_keys, WE, e);
    if (rc != HDLM_OK) return rc;
    if (!strcmp(k, "schedule") || !strcmp(k, "model") || !strcmp(k, "tokens"))
        return lua_only(a, e);
    struct {
        const char *k;
        int64_t *dst;
    } ints[] = {{"sequences", &o->sequences},
                {"length", &o->length},
                {"mc", &o->mc},
                {"batch", &o->batch},
                {"seed", &o->seed},
                {"B_mc", &o->B_mc},
                {"rounds", &o->rounds},
                {"context_width", &o->context_width}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (!strcmp(k, ints[i].k)) return want_int(a, WE, ints[i].dst, e);
    struct {
        const char *k;
        const char **dst;
    } strs[] = {{"estimator", &o->estimator},
                {"split", &o->split},
                {"context", &o->context},
                {"block_type", &o->block_type},
                {"weights", &o->weights},
                {"label", &o->label},
                {"data", data}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (!strcmp(k, strs[i].k)) return want_str(a, WE, strs[i].dst, e);
    if (!strcmp(k, "eps")) return want_num(a, WE, &o->eps, e);
    if (!strcmp(k, "vectorised")) return want_bool(a, WE, &o->vectorised, e);
    return want_bool(a, WE, &o->store, e); /* "store": the one key left */
}

static void print_bound(const cmd_ctx *c, const record *r) {
#define S(k) (record_get(r, k) ? record_get(r, k)->s : "?")
#define I(k) (record_get(r, k) ? (long long)record_get(r, k)->i : 0LL)
#define N(k) (record_get(r, k) ? record_get(r, k)->d : NAN)
    printf("run %lld (step %lld checkpoint, %s weights): %s bound on %lld %s sequences of %lld "
           "tokens\n",
           (long long)c->id, (long long)c->r.ckpt_step, S("weights"), S("estimator"),
           I("sequences"), S("split"), I("length"));
    printf("  %.4f ± %.4f nats/token = %.4f ± %.4f bits per %s\n", N("nats"), N("se"), N("bits"),
           N("bits_se"), S("unit"));
    if (!strcmp(S("estimator"), "consistent")) {
        char draws[64];
        snprintf(draws, sizeof draws, "%lld draws per sequence", I("mc"));
        const char *name = "?";
        json_value *sv = NULL;
        const record_entry *sc = record_get(r, "schedule");
        if (sc && json_parse(sc->s, strlen(sc->s), &sv, NULL) == HDLM_OK)
            name = json_string(json_get(sv, "name")) ? json_string(json_get(sv, "name")) : "?";
        printf("  schedule %s, %lld steps, %s, %s layout, %lld network passes, %.1f s\n", name,
               I("steps"), I("exact") ? "every step" : draws,
               I("continuous")   ? "continuous-time"
               : I("vectorised") ? "2L"
                                 : "per-step",
               I("forwards"), N("wall"));
        json_free(sv);
    } else {
        printf("  reference estimator: eps %g, %lld x %lld masks per sequence, L-1 denominator "
               "(%.4f nats with L)\n",
               N("eps"), I("rounds"), I("B_mc"), N("nats_per_token_L"));
    }
#undef S
#undef I
#undef N
}

static int eval_with(cmd_ctx *c, int argc, char **args, error *e) {
    run_eval_opts o;
    run_eval_defaults(&o);
    const char *data = NULL;
    int rc = HDLM_OK;
    arg *parsed = calloc((size_t)argc + 1, sizeof *parsed); /* o points into them */
    if (!parsed) return error_set(e, HDLM_ENOMEM, "out of memory");
    for (int i = 0; i < argc && rc == HDLM_OK; i++) {
        arg_parse(args[i], &parsed[i]);
        rc = eval_arg(&parsed[i], &o, &data, e);
    }
    corpus cor = {0};
    char tok_path[1300];
    tokfile_options to = {"bytes", 0.05, 0, TOKFILE_DOCS_DEFAULT};
    if (rc == HDLM_OK && data &&
        (rc = corpus_open(data, &to, 0, NULL, &cor, tok_path, sizeof tok_path, e)) == HDLM_OK)
        o.data = &cor, o.data_path = tok_path;
    run_eval_result res = {0};
    if (rc == HDLM_OK) rc = run_eval(&c->r, &o, &res, e);
    if (rc == HDLM_OK) print_bound(c, &res.res);
    run_eval_result_free(&res);
    corpus_free(&cor);
    free(parsed);
    return rc;
}

int run_cmd_eval(const char *db, const char *run_id, int argc, char **args, error *e) {
    cmd_ctx c;
    int rc = cmd_open(db, run_id, &c, e);
    if (rc == HDLM_OK) rc = eval_with(&c, argc, args, e);
    cmd_close(&c);
    return rc;
}
