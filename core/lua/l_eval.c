/* run:eval{...} and run:gen_eval{...}: the Lua side of run/run_eval.h — option tables in, result
 * tables out (the record the store also keeps).
 *   run:eval{ estimator = "consistent" | "reference", split = "valid", sequences = 64,
 *             length = <seq_len>, mc = 16 (0 = every step: exact), batch = 8, seed = 0,
 *             data = <Corpus>, schedule = {...}, context =, block_type =, vectorised =,
 *             model = <Model>, weights = "ema", eps = 1e-3, B_mc = 16, rounds = 6,
 *             store = true, label = "...", tokens = { "text" | {ids}, ... } }
 *   run:gen_eval{ judge = <Run>, samples = <run:sample result or ids>, data = <Corpus> (default:
 *                 the run's corpus file), store = true, label = } */
#include "l_internal.h"
#include "run/run_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- records as Lua tables ------------------------------------------------------------------ */

static void push_record(lua_State *L, const record *r) {
    lua_createtable(L, 0, r->n);
    for (int i = 0; i < r->n; i++) {
        const record_entry *x = &r->e[i];
        switch (x->kind) {
        case RECORD_NUM:
            lua_pushnumber(L, x->d);
            break;
        case RECORD_INT:
            lua_pushinteger(L, (lua_Integer)x->i);
            break;
        case RECORD_STR:
            lua_pushstring(L, x->s);
            break;
        case RECORD_BOOL:
            lua_pushboolean(L, (int)x->i);
            break;
        case RECORD_JSON:
            lua_pushcfunction(L, l_json_decode);
            lua_pushstring(L, x->s);
            lua_call(L, 1, 1);
            break;
        }
        lua_setfield(L, -2, x->key);
    }
}

/* Results owned by a userdata until pushed, so that a Lua error cannot leak them. */
typedef struct result_box {
    run_eval_result ev;
    run_gen_eval_result gen;
} result_box;

static int box_gc(lua_State *L) {
    result_box *b = lua_touserdata(L, 1);
    run_eval_result_free(&b->ev);
    run_gen_eval_result_free(&b->gen);
    return 0;
}

static result_box *push_box(lua_State *L) {
    result_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    if (luaL_newmetatable(L, "hdlm.EvalResult")) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

/* data = <Corpus> (kept on the stack by the option table). */
static void read_data(lua_State *L, const corpus **data, const char **path) {
    lua_getfield(L, 2, "data");
    if (!lua_isnil(L, -1)) {
        *data = l_check_corpus(L, -1);
        *path = l_corpus_path(L, -1);
    }
    lua_pop(L, 1);
}

/* ---- run:eval ------------------------------------------------------------------------------- */

#define WE "run:eval"

static int64_t opt_int(lua_State *L, const char *key) {
    lua_getfield(L, 2, key);
    int unset = lua_isnil(L, -1);
    lua_pop(L, 1);
    return unset ? RUN_UNSET : l_opt_integer(L, 2, WE, key, 0);
}

/* One given sequence (text or ids) into ids (cap entries); returns its length. */
static int read_given_one(lua_State *L, const run *r, long long b, int32_t *ids, int cap) {
    int n = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t sl;
        const char *s = lua_tolstring(L, -1, &sl);
        if (!r->tok.kind) luaL_error(L, "%s: the model has no tokenizer; give ids", WE);
        int32_t *tmp = lua_newuserdatauv(L, (sl ? sl : 1) * sizeof *tmp, 0);
        n = (int)tokenizer_encode(&r->tok, s, sl, tmp);
        if (n <= cap) memcpy(ids, tmp, (size_t)n * sizeof *ids);
        lua_pop(L, 1);
    } else if (lua_istable(L, -1)) {
        n = (int)lua_rawlen(L, -1);
        for (int i = 0; i < n && i < cap; i++) {
            lua_rawgeti(L, -1, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok) luaL_error(L, "%s: tokens[%d][%d] is not an integer", WE, (int)b + 1, i + 1);
            ids[i] = (int32_t)v;
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "%s: tokens[%d] must be a string or an array of ids", WE, (int)b + 1);
    }
    return n;
}

/* tokens = {...}: given sequences, all of one length in 2..seq_len (a userdata pushed). */
static void read_given(lua_State *L, const run *r, const model *m, run_eval_opts *o) {
    lua_getfield(L, 2, "tokens");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    int ti = lua_gettop(L);
    luaL_checktype(L, ti, LUA_TTABLE);
    long long want = (long long)lua_rawlen(L, ti);
    if (want < 1) luaL_error(L, "%s: key 'tokens' must list >= 1 sequence", WE);
    int len = 0, cap = m->cfg.seq_len; /* filled with stride cap, compacted to stride len */
    int32_t *buf = lua_newuserdatauv(L, (size_t)want * cap * sizeof *buf, 0);
    for (long long b = 0; b < want; b++) {
        lua_rawgeti(L, ti, b + 1);
        int n = read_given_one(L, r, b, buf + (size_t)b * cap, cap);
        lua_pop(L, 1);
        if (b == 0) len = n;
        if (n < 2 || n > cap || n != len)
            luaL_error(L,
                       "%s: tokens[%d] has %d tokens; every sequence needs the same length (the "
                       "first has %d), in 2..%d",
                       WE, (int)b + 1, n, len, cap);
    }
    for (long long b = 1; b < want; b++)
        memmove(buf + (size_t)b * len, buf + (size_t)b * cap, (size_t)len * sizeof *buf);
    o->tokens = buf, o->n_given = want, o->given_len = len;
}

/* The option table into o; what it reads stays on the stack. */
static void read_eval_opts(lua_State *L, const run *r, run_eval_opts *o) {
    run_eval_defaults(o);
    o->estimator = l_opt_string(L, 2, WE, "estimator", "consistent");
    lua_getfield(L, 2, "model");
    if (!lua_isnil(L, -1)) o->m = l_model_of(L, lua_gettop(L), NULL);
    o->weights = l_opt_string(L, 2, WE, "weights", NULL);
    lua_getfield(L, 2, "schedule");
    if (!lua_isnil(L, -1)) {
        o->h = l_to_schedule(L, lua_gettop(L));
        o->sched = l_schedule_instance(L, -1);
    }
    o->context = l_opt_string(L, 2, WE, "context", NULL);
    o->block_type = l_opt_string(L, 2, WE, "block_type", NULL);
    o->context_width = opt_int(L, "context_width");
    o->split = l_opt_string(L, 2, WE, "split", "valid");
    read_given(L, r, o->m ? o->m : r->m, o);
    read_data(L, &o->data, &o->data_path);
    o->length = opt_int(L, "length");
    o->sequences = opt_int(L, "sequences");
    o->seed = opt_int(L, "seed");
    o->batch = opt_int(L, "batch");
    o->eps = l_opt_number(L, 2, WE, "eps", NAN);
    o->B_mc = opt_int(L, "B_mc");
    o->rounds = opt_int(L, "rounds");
    o->mc = opt_int(L, "mc");
    lua_getfield(L, 2, "vectorised");
    if (!lua_isnil(L, -1)) o->vectorised = l_opt_bool(L, 2, WE, "vectorised", 1);
    lua_pop(L, 1);
    o->store = l_opt_bool(L, 2, WE, "store", 1);
    o->label = l_opt_string(L, 2, WE, "label", NULL);
}

int l_run_eval(lua_State *L) {
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    l_check_run(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, WE, run_eval_keys);
    const run *r = l_run_parts(L, 1, WE);
    run_eval_opts o;
    read_eval_opts(L, r, &o);
    result_box *b = push_box(L);
    error e = {0};
    if (run_eval(r, &o, &b->ev, &e) != HDLM_OK) return l_raise(L, &e);
    push_record(L, &b->ev.res);
    lua_createtable(L, (int)b->ev.n_seq, 0);
    for (int64_t i = 0; i < b->ev.n_seq; i++) {
        lua_pushnumber(L, b->ev.per_seq[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "per_sequence");
    return 1;
}

/* ---- run:gen_eval --------------------------------------------------------------------------- */

#define WG "run:gen_eval"

/* samples = { id | {id = ...}, ... } into a userdata of ids (pushed). */
static const int64_t *read_sample_ids(lua_State *L, int *n) {
    lua_getfield(L, 2, "samples");
    int sidx = lua_gettop(L);
    luaL_checktype(L, sidx, LUA_TTABLE);
    *n = (int)lua_rawlen(L, sidx);
    if (*n < 1) luaL_error(L, "%s: key 'samples' must list at least one sample", WG);
    int64_t *ids = lua_newuserdatauv(L, (size_t)*n * sizeof *ids, 0);
    for (int i = 0; i < *n; i++) {
        lua_rawgeti(L, sidx, i + 1);
        if (lua_istable(L, -1)) lua_getfield(L, -1, "id");
        int ok;
        lua_Integer id = lua_tointegerx(L, -1, &ok);
        if (!ok || id < 1)
            luaL_error(L, "%s: samples[%d] must be a sample id or a table with .id", WG, i + 1);
        ids[i] = id;
        lua_settop(L, sidx + 1);
    }
    return ids;
}

static void push_per_sample(lua_State *L, const run_gen_eval_result *g) {
    if (g->has_words) {
        lua_createtable(L, g->n, 0);
        for (int i = 0; i < g->n; i++) {
            if (!isnan(g->per_sample_share[i]))
                lua_pushnumber(L, g->per_sample_share[i]);
            else
                lua_pushboolean(L, 0); /* no complete word */
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "per_sample_word_share");
    }
    if (g->has_judge) {
        lua_createtable(L, g->n, 0);
        for (int i = 0; i < g->n; i++) {
            lua_pushnumber(L, g->per_sample_nll[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "per_sample_nll");
    }
}

int l_run_gen_eval(lua_State *L) {
    const run *r = l_check_run(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, WG, run_gen_eval_keys);
    run_gen_eval_opts o = {.store = 1};
    lua_getfield(L, 2, "judge"); /* optional: without one only the judge-free metrics */
    if (!lua_isnil(L, -1)) o.judge = l_run_parts(L, lua_gettop(L), WG);
    const char *path = NULL;
    read_data(L, &o.data, &path);
    o.ids = read_sample_ids(L, &o.n);
    o.store = l_opt_bool(L, 2, WG, "store", 1);
    o.label = l_opt_string(L, 2, WG, "label", NULL);
    result_box *b = push_box(L);
    error e = {0};
    if (run_gen_eval(r, &o, &b->gen, &e) != HDLM_OK) return l_raise(L, &e);
    push_record(L, &b->gen.res);
    push_record(L, &b->gen.settings);
    lua_setfield(L, -2, "settings");
    push_per_sample(L, &b->gen);
    return 1;
}
