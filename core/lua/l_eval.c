/* run:eval{...}: an upper bound on the NLL of held-out data, consistent with the run's
 * hyperschedule (or the reference's estimator, for comparison), stored in `evaluations`.
 *   run:eval{ estimator = "consistent" | "reference", split = "valid", sequences = 64,
 *             length = <seq_len>, mc = 16 (0 = every step: exact), batch = 8, seed = 0,
 *             data = <Corpus>, schedule = {...}, context =, block_type =, vectorised =,
 *             model = <Model>, weights = "ema", eps = 1e-3, B_mc = 16, rounds = 6,
 *             store = true, label = "..." }
 * run:gen_eval{...}: quality of generated samples — NLL under a judge (an autoregressive-schedule
 * run trained on the same corpus) in both perplexity conventions, unigram entropy, distinct-n and
 * repeated n-gram rates, and the word share (data/words.h: the share of the samples' words found
 * in the words of the corpus' training split; needs no judge) — stored in `evaluations` and in
 * each sample's metrics. Without a judge only the judge-free metrics are computed.
 *   run:gen_eval{ judge = <Run>, samples = <run:sample result or ids>, data = <Corpus> (default:
 *                 the run's corpus file), store = true, label = }
 */
#include "base/json.h"
#include "base/log.h"
#include "base/sha256.h"
#include "data/tokenizer.h"
#include "data/tokfile.h"
#include "data/words.h"
#include "diffusion/eval.h"
#include "l_internal.h"
#include "nn/mask.h"
#include "nn/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers --------------------------------------------------------------------------- */

typedef struct text_cell {
    char *s;
} text_cell;

static int first_text(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    text_cell *c = ud;
    if (ncol >= 1 && vals[0].type == STORE_TEXT && !c->s) c->s = strdup(vals[0].s);
    return 1;
}

static int first_int(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    if (ncol >= 1 && vals[0].type == STORE_INT) *(int64_t *)ud = vals[0].i;
    return 1;
}

/* Latest checkpoint id of a run (0 when none). */
static int64_t latest_checkpoint(lua_State *L, store *st, int64_t run_id) {
    store_value p = {.type = STORE_INT, .i = run_id};
    int64_t id = 0;
    error e = {0};
    if (store_query_params(st,
                           "SELECT id FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1",
                           1, &p, first_int, &id, &e) != HDLM_OK)
        l_raise(L, &e);
    return id;
}

/* The model, schedule, noise and layout of a Run at idx; raises when it has none. */
typedef struct run_parts {
    model *m;
    tokenizer tok;
    plugin_instance *noise;
    int32_t V; /* real tokens */
    const hyper *h;
    const plugin_instance *sched;
    int context, block_type, context_width;
} run_parts;

static void get_parts(lua_State *L, int run_idx, const char *W, int64_t run_id, run_parts *p) {
    lua_getiuservalue(L, run_idx, 2);
    int mi = lua_gettop(L);
    lua_getiuservalue(L, run_idx, 3);
    int si = lua_gettop(L);
    lua_getiuservalue(L, run_idx, 4);
    int hi = lua_gettop(L);
    lua_getiuservalue(L, run_idx, 5);
    int ni = lua_gettop(L);
    if (lua_isnil(L, mi) || lua_isnil(L, ni))
        luaL_error(L,
                   "%s: run %d has no model with a noise process (train it with noise = and "
                   "schedule =, or attach it with hdlm_run.load)",
                   W, (int)run_id);
    p->m = l_model_of(L, mi, &p->tok);
    p->noise = l_noise_of_guard(L, ni);
    if (!p->noise) luaL_error(L, "%s: the run's noise process is gone", W);
    p->V = p->m->cfg.vocab - p->noise->info.n_extra;
    p->h = l_check_schedule(L, hi);
    p->sched = l_schedule_instance(L, hi);
    lua_getfield(L, si, "context");
    lua_getfield(L, si, "block_type");
    p->context = mask_context_from_name(luaL_optstring(L, -2, "block_causal"));
    p->block_type = mask_block_from_name(luaL_optstring(L, -1, "full"));
    lua_pop(L, 2);
    lua_getfield(L, si, "context_width");
    p->context_width = (int)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    /* the userdata stay referenced by the Run (argument run_idx), so popping them is safe */
}

static const char *unit_of(const tokenizer *tok) {
    return tok->kind && !strcmp(tokenizer_name(tok->kind), "text8") ? "char" : "byte";
}

/* Pushes the JSON of {name, version, options} of a plugin instance (or of a Lua schedule). */
static void push_plugin_json(lua_State *L, const plugin_instance *pi, const hyper *h) {
    char *j = pi ? l_plugin_json(pi) : NULL;
    if (j) {
        lua_pushstring(L, j);
        free(j);
        return;
    }
    json_buf jb = {0};
    json_buf_raw(&jb, "{\"name\":");
    json_buf_str(&jb, h && h->name ? h->name : "lua");
    json_buf_raw(&jb, ",\"version\":\"lua\",\"options\":{}}");
    lua_pushstring(L, jb.data ? jb.data : "{}");
    json_buf_free(&jb);
}

/* Decodes the JSON string at the top into a Lua value replacing it. */
static void decode_top(lua_State *L) {
    lua_pushcfunction(L, l_json_decode);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
}

/* ---- run:eval ----------------------------------------------------------------------------------
 */

static const char *const eval_keys[] = {
    "estimator", "split",   "sequences",     "length",  "mc",         "batch",
    "seed",      "data",    "schedule",      "context", "block_type", "vectorised",
    "model",     "weights", "eps",           "B_mc",    "rounds",     "store",
    "label",     "tokens",  "context_width", NULL};

typedef struct corpus_guard {
    corpus c;
    int loaded;
} corpus_guard;

static int corpus_guard_gc(lua_State *L) {
    corpus_guard *g = lua_touserdata(L, 1);
    if (g->loaded) corpus_free(&g->c);
    g->loaded = 0;
    return 0;
}

/* The corpus: data = <Corpus>, or the file recorded in the run's config. Pushes its path (kept
 * on the stack, for the settings). When the run records no corpus file: an error if `required`,
 * else NULL with nothing pushed. */
static const corpus *find_corpus(lua_State *L, store *st, int64_t run_id, const char *W,
                                 int required) {
    lua_getfield(L, 2, "data");
    if (!lua_isnil(L, -1)) {
        const corpus *c = l_check_corpus(L, lua_gettop(L));
        lua_pushstring(L, l_corpus_path(L, lua_gettop(L)));
        return c;
    }
    lua_pop(L, 1);
    store_value p = {.type = STORE_INT, .i = run_id};
    text_cell c = {0};
    error e = {0};
    if (store_query_params(st, "SELECT json_extract(config, '$.data') FROM runs WHERE id = ?", 1,
                           &p, first_text, &c, &e) != HDLM_OK)
        l_raise(L, &e);
    if (!c.s && !required) return NULL;
    if (!c.s)
        luaL_error(L,
                   "%s: run %d records no corpus file in its config; pass data = hdlm.corpus{...}",
                   W, (int)run_id);
    lua_pushstring(L, c.s); /* below the guard: the guard stays on top */
    corpus_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    memset(g, 0, sizeof *g);
    if (luaL_newmetatable(L, "hdlm.CorpusGuard")) {
        lua_pushcfunction(L, corpus_guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    int rc = corpus_load(c.s, &g->c, &e);
    free(c.s);
    if (rc != HDLM_OK) l_raise(L, &e);
    g->loaded = 1;
    return &g->c; /* the guard stays on the stack */
}

static const corpus *eval_corpus(lua_State *L, store *st, int64_t run_id, const char *W) {
    return find_corpus(L, st, run_id, W, 1);
}

int l_run_eval(lua_State *L) {
    const char *W = "run:eval";
    int64_t run_id;
    store *st = l_run_store(L, 1, &run_id);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, eval_keys);
    run_parts p;
    get_parts(L, 1, W, run_id, &p);
    const char *estimator = l_opt_string(L, 2, W, "estimator", "consistent");
    int reference = !strcmp(estimator, "reference");
    if (!reference && strcmp(estimator, "consistent"))
        return luaL_error(L, "%s: key 'estimator' must be 'consistent' or 'reference', got '%s'", W,
                          estimator);
    /* overrides: weights (a Model), schedule, layout */
    lua_getfield(L, 2, "model");
    model *m = p.m;
    if (!lua_isnil(L, -1)) m = l_model_of(L, lua_gettop(L), NULL);
    const char *weights = l_opt_string(L, 2, W, "weights", lua_isnil(L, -1) ? "ema" : "given");
    lua_getfield(L, 2, "schedule");
    const hyper *h = p.h;
    const plugin_instance *sp = p.sched;
    if (!lua_isnil(L, -1)) {
        l_to_schedule(L, lua_gettop(L));
        h = l_check_schedule(L, -1);
        sp = l_schedule_instance(L, -1);
    }
    int context = mask_context_from_name(l_opt_string(L, 2, W, "context", ""));
    if (context < 0) context = p.context;
    int block_type = mask_block_from_name(l_opt_string(L, 2, W, "block_type", ""));
    if (block_type < 0) block_type = p.block_type;
    int context_width = (int)l_opt_integer(L, 2, W, "context_width", p.context_width);
    if (context_width < 0)
        return luaL_error(L, "%s: key 'context_width' must be >= 1, got %d", W, context_width);
    const char *split = l_opt_string(L, 2, W, "split", "valid");
    if (strcmp(split, "valid") && strcmp(split, "train"))
        return luaL_error(L, "%s: key 'split' must be 'valid' or 'train', got '%s'", W, split);
    int len;
    long long want;
    const int32_t *tok;
    const char *data_path = NULL; /* the corpus file the sequences came from */
    lua_getfield(L, 2, "tokens");
    if (!lua_isnil(L, -1)) {
        /* given sequences: arrays of ids or strings (encoded with the model's tokenizer) */
        int ti = lua_gettop(L);
        luaL_checktype(L, ti, LUA_TTABLE);
        want = (long long)lua_rawlen(L, ti);
        if (want < 1) return luaL_error(L, "%s: key 'tokens' must list >= 1 sequence", W);
        len = 0;
        int cap = m->cfg.seq_len; /* filled with stride cap, compacted to stride len after */
        int32_t *buf = lua_newuserdatauv(L, (size_t)want * cap * sizeof *buf, 0);
        for (long long b = 0; b < want; b++) {
            lua_rawgeti(L, ti, b + 1);
            int n = 0;
            int32_t *ids = buf + (size_t)b * cap;
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t sl;
                const char *s = lua_tolstring(L, -1, &sl);
                if (!p.tok.kind)
                    return luaL_error(L, "%s: the model has no tokenizer; give ids", W);
                int32_t *tmp = lua_newuserdatauv(L, (sl ? sl : 1) * sizeof *tmp, 0);
                n = (int)tokenizer_encode(&p.tok, s, sl, tmp);
                if (n <= cap) memcpy(ids, tmp, (size_t)n * sizeof *ids);
                lua_pop(L, 1);
            } else if (lua_istable(L, -1)) {
                n = (int)lua_rawlen(L, -1);
                for (int i = 0; i < n && i < cap; i++) {
                    lua_rawgeti(L, -1, i + 1);
                    int ok;
                    lua_Integer v = lua_tointegerx(L, -1, &ok);
                    if (!ok)
                        return luaL_error(L, "%s: tokens[%d][%d] is not an integer", W, (int)b + 1,
                                          i + 1);
                    ids[i] = (int32_t)v;
                    lua_pop(L, 1);
                }
            } else {
                return luaL_error(L, "%s: tokens[%d] must be a string or an array of ids", W,
                                  (int)b + 1);
            }
            lua_pop(L, 1);
            if (b == 0) len = n;
            if (n < 2 || n > cap || n != len)
                return luaL_error(L,
                                  "%s: tokens[%d] has %d tokens; every sequence needs the same "
                                  "length (the first has %d), in 2..%d",
                                  W, (int)b + 1, n, len, cap);
        }
        for (long long b = 1; b < want; b++)
            memmove(buf + (size_t)b * len, buf + (size_t)b * cap, (size_t)len * sizeof *buf);
        tok = buf;
        split = "given";
    } else {
        const corpus *c = eval_corpus(L, st, run_id, W);
        data_path = lua_tostring(L, lua_type(L, -1) == LUA_TSTRING ? -1 : -2); /* under a guard */
        len = (int)l_opt_integer(L, 2, W, "length", m->cfg.seq_len);
        if (len < 2 || len > m->cfg.seq_len)
            return luaL_error(L, "%s: key 'length' must be in 2..%d (the model's seq_len), got %d",
                              W, m->cfg.seq_len, len);
        tok = strcmp(split, "valid") ? c->train : c->valid;
        int64_t n_tok = strcmp(split, "valid") ? c->n_train : c->n_valid;
        int64_t avail = n_tok / len;
        want = l_opt_integer(L, 2, W, "sequences", avail < 64 ? avail : 64);
        if (avail < 1)
            return luaL_error(L, "%s: the %s split has %d tokens, fewer than one sequence of %d", W,
                              split, (int)n_tok, len);
        if (want < 1 || want > avail)
            return luaL_error(L,
                              "%s: key 'sequences' must be in 1..%d (%s split, length %d), got %d",
                              W, (int)avail, split, len, (int)want);
    }
    for (int64_t i = 0; i < want * len; i++)
        if (tok[i] < 0 || tok[i] >= p.V)
            return luaL_error(L,
                              "%s: token %d at %d of the %s sequences is outside the model's %d "
                              "real tokens (another corpus?)",
                              W, (int)tok[i], (int)i, split, (int)p.V);
    uint64_t seed = (uint64_t)l_opt_integer(L, 2, W, "seed", 0);
    int batch = (int)l_opt_integer(L, 2, W, "batch", 8);
    if (batch < 1 || batch > 4096)
        return luaL_error(L, "%s: key 'batch' must be in 1..4096, got %d", W, batch);
    const hdlm_noise_ops *no = p.noise->ops;
    eval_result r;
    error e = {0};
    int rc;
    double eps = 0;
    int mc = 0, B_mc = 0, rounds = 0, vec = -1;
    if (reference) {
        eps = l_opt_number(L, 2, W, "eps", 1e-3);
        B_mc = (int)l_opt_integer(L, 2, W, "B_mc", 16);
        rounds = (int)l_opt_integer(L, 2, W, "rounds", 6);
        eval_ref_config rc_cfg = {eps, B_mc, rounds, batch, seed};
        rc = eval_reference(m, p.noise->self, no, &rc_cfg, tok, want, len, p.V, &r, &e);
    } else {
        mc = (int)l_opt_integer(L, 2, W, "mc", 16);
        lua_getfield(L, 2, "vectorised");
        if (!lua_isnil(L, -1)) vec = l_opt_bool(L, 2, W, "vectorised", 1);
        lua_pop(L, 1);
        eval_config ec = {context, block_type, mc, vec, -1, batch, seed, context_width};
        rc = eval_bound(m, h, p.noise->self, no, &ec, tok, want, len, p.V, &r, &e);
    }
    if (rc != HDLM_OK) return l_raise(L, &e);
    /* result table (also the settings stored with the numbers) */
    const double ln2 = log(2.0);
    lua_createtable(L, 0, 24);
    int res = lua_gettop(L);
#define SETN(k, v) (lua_pushnumber(L, (v)), lua_setfield(L, res, (k)))
#define SETI(k, v) (lua_pushinteger(L, (v)), lua_setfield(L, res, (k)))
#define SETS(k, v) (lua_pushstring(L, (v)), lua_setfield(L, res, (k)))
#define SETB(k, v) (lua_pushboolean(L, (v)), lua_setfield(L, res, (k)))
    SETS("estimator", estimator);
    SETN("nats", r.nats);
    SETN("se", r.se);
    SETN("bits_per_token", r.nats / ln2);
    /* bits per byte for every tokenizer: the evaluated tokens stand for this many text bytes
     * (tokenizer_unit_bytes: a BPE token its decoded length, <|endoftext|> the one blank line it
     * replaced), so runs with different tokenizers compare; text8 counts characters */
    int64_t n_units = 0;
    for (int64_t i = 0; i < want * len; i++)
        n_units += p.tok.kind ? tokenizer_unit_bytes(&p.tok, tok[i]) : 1;
    double per_unit = n_units > 0 ? (double)(want * len) / (double)n_units : 1.0;
    SETN("bytes_per_token", 1.0 / per_unit);
    SETN("bits_per_unit", r.nats / ln2 * per_unit);
    SETN("bits_per_byte", r.nats / ln2 * per_unit);
    SETN("bits", r.nats / ln2 * per_unit); /* per unit: what runs with other tokenizers share */
    SETN("bits_se", r.se / ln2 * per_unit);
    SETS("unit", unit_of(&p.tok));
    if (p.tok.kind) SETS("tokenizer", tokenizer_label(&p.tok));
    SETI("sequences", r.n_seq);
    SETI("length", len);
    SETI("tokens", r.tokens);
    SETS("split", split);
    if (data_path) SETS("data", data_path);
    {
        /* what pairs two evaluations item by item (hdlm compare): the same token ids in the same
         * order; ids hashed as little-endian int32 */
        char hex[65];
        sha256_hex(tok, (size_t)want * (size_t)len * sizeof *tok, hex);
        SETS("sequences_sha256", hex);
    }
    SETS("weights", weights);
    SETI("seed", (lua_Integer)seed);
    SETI("batch", batch);
    SETI("forwards", r.forwards);
    SETN("wall", r.wall);
    if (reference) {
        SETN("eps", eps);
        SETI("B_mc", B_mc);
        SETI("rounds", rounds);
        SETS("denominator", "L-1");
        SETN("nats_per_token_L", r.nats * (len - 1) / len);
    } else {
        SETI("mc", r.mc);
        SETS("process", r.process);
        SETN("prior_nats", r.prior);
        SETB("exact", r.exact);
        SETB("vectorised", r.vectorised);
        SETB("continuous", r.continuous);
        SETI("steps", r.n_steps);
        lua_pushstring(L, context == MASK_CTX_FULL     ? "full"
                          : context == MASK_CTX_CAUSAL ? "causal"
                                                       : "block_causal");
        lua_setfield(L, res, "context");
        SETS("block_type", block_type == MASK_BLOCK_CAUSAL ? "causal" : "full");
        SETI("context_width", hyper_mask_width(h, len, context_width));
        push_plugin_json(L, sp, h);
        decode_top(L);
        lua_setfield(L, res, "schedule");
    }
    {
        char *nj = l_plugin_json(p.noise);
        lua_pushstring(L, nj ? nj : "{}");
        free(nj);
        decode_top(L);
        lua_setfield(L, res, "noise");
    }
    const char *label = l_opt_string(L, 2, W, "label", NULL);
    if (label) SETS("label", label);
    if (l_opt_bool(L, 2, W, "store", 1)) {
        l_push_json(L, res);
        int64_t ck = latest_checkpoint(L, st, run_id), eid = 0;
        /* per-sequence values in nats per token over the same denominator as r.nats (length,
         * or length - 1 for the reference estimator): their mean is the stored value */
        double per_tok = r.n_seq ? (double)r.tokens / (double)r.n_seq : 1;
        double *items = lua_newuserdatauv(L, (size_t)(r.n_seq ? r.n_seq : 1) * sizeof *items, 0);
        for (int64_t b = 0; b < r.n_seq; b++)
            items[b] = r.per_seq[b] / per_tok;
        if (store_evaluation_items(st, run_id, ck, "nll_bound", r.nats, r.se, lua_tostring(L, -2),
                                   items, r.n_seq, &eid, &e) != HDLM_OK) {
            eval_result_free(&r);
            return l_raise(L, &e);
        }
        lua_pop(L, 2);
        lua_pushinteger(L, eid);
        lua_setfield(L, res, "evaluation_id");
    }
    lua_createtable(L, (int)r.n_seq, 0);
    for (int64_t b = 0; b < r.n_seq; b++) {
        lua_pushnumber(L, r.per_seq[b]);
        lua_rawseti(L, -2, b + 1);
    }
    lua_setfield(L, res, "per_sequence");
    eval_result_free(&r);
    lua_settop(L, res);
    return 1;
#undef SETN
#undef SETI
#undef SETS
#undef SETB
}

/* ---- run:gen_eval ------------------------------------------------------------------------------
 */

static const char *const gen_keys[] = {"judge", "samples", "data", "store", "label", NULL};

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
    if ((h->flags & HDLM_INFO_CONTINUOUS) || L < 1 || h->n_steps(h->ctx, L) != L) return 0;
    int32_t W = h->n_levels(h->ctx);
    int32_t *level = malloc((size_t)L * sizeof *level);
    int ar = level != NULL;
    for (int64_t s = 1; s <= L && ar; s++) {
        int64_t n_settled;
        error e = {0};
        if (hyper_levels(h, s, L, level, &n_settled, &e) != HDLM_OK || n_settled != s - 1) ar = 0;
        for (int64_t i = 0; i < L && ar; i++)
            ar = i < s - 1 ? level[i] == 0 : i == s - 1 ? level[i] != W : level[i] == W;
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

int l_run_gen_eval(lua_State *L) {
    const char *W = "run:gen_eval";
    int64_t run_id;
    store *st = l_run_store(L, 1, &run_id);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, gen_keys);
    /* the judge (optional: without one only the judge-free metrics are computed) */
    lua_getfield(L, 2, "judge");
    int judge_idx = lua_gettop(L);
    int have_judge = !lua_isnil(L, judge_idx);
    int64_t judge_id = 0;
    run_parts jp = {0};
    if (have_judge) {
        l_run_store(L, judge_idx, &judge_id);
        get_parts(L, judge_idx, W, judge_id, &jp);
    }
    /* the corpus whose training split gives the word vocabulary: data =, or the run's own */
    const corpus *cor = find_corpus(L, st, run_id, W, !have_judge);
    int32_t V = have_judge ? jp.V : cor->tok.vocab; /* the tokens a sample may hold */
    /* sample ids */
    lua_getfield(L, 2, "samples");
    int sidx = lua_gettop(L);
    luaL_checktype(L, sidx, LUA_TTABLE);
    int n = (int)lua_rawlen(L, sidx);
    if (n < 1) return luaL_error(L, "%s: key 'samples' must list at least one sample", W);
    int64_t *ids = lua_newuserdatauv(L, (size_t)n * sizeof *ids, 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, sidx, i + 1);
        if (lua_istable(L, -1)) lua_getfield(L, -1, "id");
        int ok;
        lua_Integer id = lua_tointegerx(L, -1, &ok);
        if (!ok || id < 1)
            return luaL_error(L, "%s: samples[%d] must be a sample id or a table with .id", W,
                              i + 1);
        ids[i] = id;
        lua_settop(L, sidx + 1);
    }
    /* read the samples: all of the same length, all of this run; the first one's sampler and
     * settings describe the set */
    int len = 0;
    int32_t *toks = NULL;
    sample_row first = {0};
    error e = {0};
    for (int i = 0; i < n; i++) {
        sample_row s = {.id = ids[i]};
        store_value pv = {.type = STORE_INT, .i = ids[i]};
        int rc = store_query_params(st,
                                    "SELECT run_id, tokens, sampler, settings, steps, nfe FROM "
                                    "samples WHERE id = ?",
                                    1, &pv, read_sample, &s, &e);
        json_value *jv = NULL;
        const char *bad = NULL;
        if (rc != HDLM_OK)
            bad = e.msg;
        else if (s.id > 0)
            bad = "does not exist";
        else if (s.run_id != run_id)
            bad = "belongs to another run";
        else if (!s.tokens || json_parse(s.tokens, strlen(s.tokens), &jv, &e) != HDLM_OK ||
                 json_type(jv) != JSON_ARRAY || json_len(jv) < 2)
            bad = "has no token array of length >= 2";
        else if (len && (int)json_len(jv) != len)
            bad = "has another length than the first sample";
        else if (have_judge && (int)json_len(jv) > jp.m->cfg.seq_len)
            bad = "is longer than the judge's seq_len";
        if (!bad) {
            if (!len) {
                len = (int)json_len(jv);
                toks = lua_newuserdatauv(L, (size_t)n * len * sizeof *toks, 0);
            }
            for (int k = 0; k < len && !bad; k++) {
                int64_t t = json_int(json_at(jv, (size_t)k));
                if (t < 0 || t >= V)
                    bad = have_judge ? "holds a token the judge does not know (a mask left?)"
                                     : "holds a token outside the corpus' vocabulary (a mask "
                                       "left?)";
                toks[(size_t)i * len + k] = (int32_t)t;
            }
        }
        json_free(jv);
        free(s.tokens);
        if (i == 0) {
            first = s;
        } else {
            free(s.sampler), free(s.settings);
        }
        if (bad) {
            free(first.sampler), free(first.settings);
            return luaL_error(L, "%s: sample %d %s", W, (int)ids[i], bad);
        }
    }
    /* word share (judge-free) */
    word_stats wst = {0};
    if (cor) {
        wst.w = lua_newuserdatauv(L, (size_t)n * 2 * sizeof *wst.w, 0);
        wst.k = wst.w + n;
        memset(wst.w, 0, (size_t)n * 2 * sizeof *wst.w);
        if (word_share_of(cor, toks, n, len, &wst) != 0) {
            free(first.sampler), free(first.settings);
            return luaL_error(L, "%s: out of memory for the corpus' words", W);
        }
    }
    /* NLL of every sample under the judge: its own schedule and layout, every step (exact for the
     * autoregressive schedule, one vectorised pass per batch) */
    eval_result r = {0};
    int judge_ar = 0;
    if (have_judge) {
        eval_config ec = {jp.context, jp.block_type, 0, -1, -1, 8, 0, jp.context_width};
        if (jp.h->flags & HDLM_INFO_CONTINUOUS) ec.mc = 64;
        if (eval_bound(jp.m, jp.h, jp.noise->self, jp.noise->ops, &ec, toks, n, len, jp.V, &r,
                       &e) != HDLM_OK) {
            free(first.sampler), free(first.settings);
            return l_raise(L, &e);
        }
        /* the judge's NLL is exact only under the autoregressive chain; otherwise a bound */
        judge_ar = schedule_is_autoregressive(jp.h, len);
        if (!judge_ar)
            log_msg(HDLM_LOG_WARN,
                    "%s: judge run %lld uses schedule '%s', which is not autoregressive: gen_nll "
                    "is its bound, not an exact NLL (judge_exact = false); train the judge with "
                    "the autoregressive schedule",
                    W, (long long)judge_id, jp.h->name ? jp.h->name : "?");
    }
    /* per-sample metrics and pooled diversity */
    uint64_t *keys = malloc((size_t)n * len * sizeof *keys);
    uint64_t *scr = malloc((size_t)len * sizeof *scr);
    double *ent = malloc((size_t)n * sizeof *ent);
    if (!keys || !scr || !ent) {
        free(keys), free(scr), free(ent), eval_result_free(&r);
        free(first.sampler), free(first.settings);
        return luaL_error(L, "%s: out of memory", W);
    }
    double ppl_mean = 0, ent_mean = 0, ent_sq = 0, rep[5] = {0}, distinct[5] = {0};
    for (int i = 0; i < n; i++) {
        const int32_t *x = toks + (size_t)i * len;
        if (have_judge) ppl_mean += exp(r.per_seq[i] / len) / n;
        ent[i] = unigram_entropy(x, len, scr);
        ent_mean += ent[i] / n;
        for (int g = 2; g <= 4; g++) {
            int64_t k = pack_ngrams(x, len, g, scr);
            rep[g] += k ? (1.0 - (double)count_unique(scr, k) / (double)k) / n : 0;
        }
    }
    for (int i = 0; i < n; i++)
        ent_sq += (ent[i] - ent_mean) * (ent[i] - ent_mean);
    for (int g = 1; g <= 4; g++) {
        int64_t k = 0;
        for (int i = 0; i < n; i++)
            k += pack_ngrams(toks + (size_t)i * len, len, g, keys + k);
        distinct[g] = k ? (double)count_unique(keys, k) / (double)k : 0;
    }
    double ent_se = n > 1 ? sqrt(ent_sq / (n - 1) / n) : NAN;
    /* results + settings */
    lua_createtable(L, 0, 24);
    int res = lua_gettop(L);
    if (have_judge) {
        lua_pushnumber(L, r.nats), lua_setfield(L, res, "gen_nll");
        lua_pushnumber(L, r.se), lua_setfield(L, res, "gen_nll_se");
        lua_pushnumber(L, exp(r.nats)), lua_setfield(L, res, "gen_ppl");
        lua_pushnumber(L, ppl_mean), lua_setfield(L, res, "gen_ppl_mean");
    }
    lua_pushnumber(L, ent_mean), lua_setfield(L, res, "entropy");
    lua_pushnumber(L, ent_se), lua_setfield(L, res, "entropy_se");
    for (int g = 1; g <= 4; g++) {
        char k[16];
        snprintf(k, sizeof k, "distinct_%d", g);
        lua_pushnumber(L, distinct[g]), lua_setfield(L, res, k);
        if (g >= 2) {
            snprintf(k, sizeof k, "rep_%d", g);
            lua_pushnumber(L, rep[g]), lua_setfield(L, res, k);
        }
    }
    if (wst.on) {
        lua_pushnumber(L, wst.share), lua_setfield(L, res, "word_share");
        lua_pushnumber(L, wst.se), lua_setfield(L, res, "word_share_se");
        lua_pushinteger(L, wst.words), lua_setfield(L, res, "words");
        lua_pushinteger(L, wst.known), lua_setfield(L, res, "known_words");
        lua_pushinteger(L, wst.vocabulary), lua_setfield(L, res, "word_vocabulary");
        lua_createtable(L, n, 0);
        for (int i = 0; i < n; i++) {
            if (wst.w[i])
                lua_pushnumber(L, (double)wst.k[i] / (double)wst.w[i]);
            else
                lua_pushboolean(L, 0); /* no complete word */
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, res, "per_sample_word_share");
    }
    lua_pushinteger(L, n), lua_setfield(L, res, "n");
    lua_createtable(L, 0, 12);
    int set = lua_gettop(L);
    if (have_judge) {
        lua_pushinteger(L, judge_id), lua_setfield(L, set, "judge_run");
        push_plugin_json(L, jp.sched, jp.h);
        decode_top(L);
        lua_setfield(L, set, "judge_schedule");
        lua_pushboolean(L, r.exact && judge_ar), lua_setfield(L, set, "judge_exact");
    }
    lua_pushinteger(L, n), lua_setfield(L, set, "n_samples");
    lua_pushinteger(L, len), lua_setfield(L, set, "length");
    lua_pushinteger(L, ids[0]), lua_setfield(L, set, "first_sample");
    lua_pushinteger(L, ids[n - 1]), lua_setfield(L, set, "last_sample");
    lua_pushinteger(L, first.steps), lua_setfield(L, set, "steps");
    lua_pushinteger(L, first.nfe), lua_setfield(L, set, "nfe");
    if (have_judge) {
        lua_pushstring(L, "nll over all tokens incl. the first; gen_ppl = exp(token mean), "
                          "gen_ppl_mean = mean of per-sample exp(nll)");
        lua_setfield(L, set, "conventions");
    }
    if (wst.on) {
        lua_pushinteger(L, wst.vocabulary), lua_setfield(L, set, "word_vocabulary");
        lua_pushinteger(L, wst.words), lua_setfield(L, set, "words");
        lua_pushstring(L, "word_share = known / words pooled over samples; words: pieces between "
                          "whitespace not touching the sample's edges, leading/trailing non-"
                          "alphanumerics stripped, lower-cased, empty ignored; known: in the "
                          "words of the corpus' training split");
        lua_setfield(L, set, "word_share_definition");
    }
    if (first.sampler) {
        lua_pushstring(L, first.sampler);
        decode_top(L);
        lua_setfield(L, set, "sampler");
    }
    if (first.settings) { /* temperature, top_k, top_p, draws (float64), cache, ... */
        lua_pushstring(L, first.settings);
        decode_top(L);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, set);
        }
        lua_pop(L, 1);
    }
    free(first.sampler), free(first.settings);
    const char *label = l_opt_string(L, 2, W, "label", NULL);
    if (label) lua_pushstring(L, label), lua_setfield(L, set, "label");
    lua_pushvalue(L, set);
    lua_setfield(L, res, "settings");
    int rc = HDLM_OK;
    if (l_opt_bool(L, 2, W, "store", 1)) {
        l_push_json(L, set);
        const char *sj = lua_tostring(L, -1);
        struct {
            const char *k;
            double v, se;
            int on;
        } rows[] = {{"gen_nll", r.nats, r.se, have_judge},
                    {"gen_ppl", exp(r.nats), NAN, have_judge},
                    {"gen_ppl_mean", ppl_mean, NAN, have_judge},
                    {"entropy", ent_mean, ent_se, 1},
                    {"distinct_1", distinct[1], NAN, 1},
                    {"distinct_2", distinct[2], NAN, 1},
                    {"distinct_3", distinct[3], NAN, 1},
                    {"distinct_4", distinct[4], NAN, 1},
                    {"rep_2", rep[2], NAN, 1},
                    {"rep_3", rep[3], NAN, 1},
                    {"rep_4", rep[4], NAN, 1},
                    {"word_share", wst.share, wst.se, wst.on}};
        int64_t ck = latest_checkpoint(L, st, run_id);
        /* gen_nll keeps each sample's NLL per token as its items (in the order of `samples`),
         * word_share each sample's share (when every sample has a word) */
        double *items = lua_newuserdatauv(L, (size_t)n * 2 * sizeof *items, 0);
        double *witems = items + n;
        int64_t n_witems = n; /* none when a sample has no word (items are numbers) */
        for (int i = 0; i < n; i++) {
            items[i] = have_judge ? r.per_seq[i] / len : 0;
            witems[i] = wst.on && wst.w[i] ? (double)wst.k[i] / (double)wst.w[i] : 0;
            if (!wst.on || !wst.w[i]) n_witems = 0;
        }
        for (size_t k = 0; k < sizeof rows / sizeof *rows && rc == HDLM_OK; k++) {
            if (!rows[k].on) continue;
            int word = !strcmp(rows[k].k, "word_share");
            rc = store_evaluation_items(st, run_id, ck, rows[k].k, rows[k].v, rows[k].se, sj,
                                        word ? witems : items,
                                        word     ? n_witems
                                        : k == 0 ? n
                                                 : 0,
                                        NULL, &e);
        }
        lua_pop(L, 1);
        /* per-sample metrics */
        for (int i = 0; i < n && rc == HDLM_OK; i++) {
            json_buf mj = {0};
            char num[128];
            json_buf_raw(&mj, "{");
            if (have_judge) {
                snprintf(num, sizeof num, "\"gen_nll\":%.17g,", r.per_seq[i] / len);
                json_buf_raw(&mj, num);
                snprintf(num, sizeof num, "\"gen_ppl\":%.17g,", exp(r.per_seq[i] / len));
                json_buf_raw(&mj, num);
                snprintf(num, sizeof num, "\"judge_run\":%lld,", (long long)judge_id);
                json_buf_raw(&mj, num);
            }
            if (wst.on) {
                if (wst.w[i]) {
                    snprintf(num, sizeof num, "\"word_share\":%.17g,",
                             (double)wst.k[i] / (double)wst.w[i]);
                    json_buf_raw(&mj, num);
                }
                snprintf(num, sizeof num, "\"words\":%lld,\"known_words\":%lld,",
                         (long long)wst.w[i], (long long)wst.k[i]);
                json_buf_raw(&mj, num);
            }
            snprintf(num, sizeof num, "\"entropy\":%.17g}", ent[i]);
            json_buf_raw(&mj, num);
            store_value pv[2] = {{.type = STORE_TEXT, .s = mj.data, .len = (int64_t)mj.len},
                                 {.type = STORE_INT, .i = ids[i]}};
            rc = store_query_params(st,
                                    "UPDATE samples SET metrics = json_patch(coalesce(metrics, "
                                    "'{}'), ?1) WHERE id = ?2",
                                    2, pv, NULL, NULL, &e);
            json_buf_free(&mj);
        }
        lua_pop(L, 1);
    }
    if (have_judge) {
        lua_createtable(L, n, 0);
        for (int i = 0; i < n; i++) {
            lua_pushnumber(L, r.per_seq[i] / len);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, res, "per_sample_nll");
    }
    free(keys), free(scr), free(ent);
    if (have_judge) eval_result_free(&r);
    if (rc != HDLM_OK) return l_raise(L, &e);
    lua_settop(L, res);
    return 1;
}
