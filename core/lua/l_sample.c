/* run:sample{...}: the Lua side of run_sample (run/run_sample.h) — the option table in, the
 * stored samples out.
 *   run:sample{ sampler = {"acs", eta = 0.01}, n = 4, length = 128, temperature = 1, top_k = 0,
 *               top_p = 1, prompt = "The ", infill = { [10] = "x" }, seed = 1, cache = true,
 *               events = true, schedule = {...} }   -- schedule defaults to the training one */
#include "l_internal.h"
#include "run/run_sample.h"

#include <stdlib.h>
#include <string.h>

#define W "run:sample"

/* The options of run_sample_opts in a userdata, so that a Lua error cannot leak them. */
static int opts_gc(lua_State *L) {
    run_sample_opts_free(lua_touserdata(L, 1));
    return 0;
}

static run_sample_opts *push_opts(lua_State *L) {
    run_sample_opts *o = lua_newuserdatauv(L, sizeof *o, 0);
    run_sample_defaults(o);
    if (luaL_newmetatable(L, "hdlm.SampleOpts")) {
        lua_pushcfunction(L, opts_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return o;
}

/* A token sequence given as text (encoded with the model's tokenizer) or ids; pushes a userdata
 * holding it. */
static int32_t *read_tokens(lua_State *L, int idx, const run *r, const char *what, int *n) {
    int32_t Vp = r->m->cfg.vocab;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        int32_t *ids = NULL;
        error e = {0};
        if (run_encode(r, s, len, what, &ids, n, &e) != HDLM_OK) l_raise(L, &e);
        int32_t *ud = lua_newuserdatauv(L, (size_t)(*n ? *n : 1) * sizeof *ud, 0);
        memcpy(ud, ids, (size_t)*n * sizeof *ud);
        free(ids);
        return ud;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    int len = (int)lua_rawlen(L, idx);
    int32_t *ids = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *ids, 0);
    for (int i = 0; i < len; i++) {
        lua_rawgeti(L, idx, i + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v >= Vp)
            luaL_error(L, "%s: entry %d must be a token id in 0..%d", what, i + 1, (int)Vp - 1);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    *n = len;
    return ids;
}

/* prompt = text|ids and infill = { [position] = text|ids, ... } into the fixed positions. */
static void read_fixed(lua_State *L, const run *r, run_sample_opts *o) {
    error e = {0};
    int n;
    lua_getfield(L, 2, "prompt");
    if (!lua_isnil(L, -1)) {
        int32_t *p = read_tokens(L, lua_gettop(L), r, "run:sample prompt", &n);
        if (run_sample_fix(o, p, n, 0, 1, &e) != HDLM_OK) l_raise(L, &e);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "infill");
    if (!lua_isnil(L, -1)) {
        int t = lua_gettop(L);
        luaL_checktype(L, t, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, t)) {
            int ok;
            lua_Integer pos = lua_tointegerx(L, -2, &ok);
            if (!ok || pos < 1 || pos > o->length)
                luaL_error(L, "%s: infill keys must be positions 1..%d", W, o->length);
            int32_t *p = read_tokens(L, lua_gettop(L), r, "run:sample infill", &n);
            if (run_sample_fix(o, p, n, (int)pos - 1, 0, &e) != HDLM_OK) l_raise(L, &e);
            lua_pop(L, 2); /* ids userdata, value */
        }
    }
    lua_pop(L, 1);
}

/* sampler = "name" | {"name", options...} | {name =, options =} (as stored with a sample). */
static void read_sampler(lua_State *L, run_sample_opts *o) {
    lua_getfield(L, 2, "sampler");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 1, 0);
        lua_pushstring(L, "ancestral");
        lua_rawseti(L, -2, 1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        lua_createtable(L, 1, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
    }
    int spec = lua_gettop(L);
    luaL_checktype(L, spec, LUA_TTABLE);
    o->sampler_opts =
        l_spec_to_opts(L, spec, HDLM_KIND_SAMPLER, "run:sample sampler", &o->sampler, NULL);
    /* the name stays valid: the spec table stays on the stack */
}

static void push_samples(lua_State *L, const run_samples *s) {
    lua_createtable(L, s->n, 0);
    for (int b = 0; b < s->n; b++) {
        const run_sample_item *it = &s->items[b];
        lua_createtable(L, 0, 8);
        lua_pushinteger(L, it->id), lua_setfield(L, -2, "id");
        lua_pushstring(L, it->text), lua_setfield(L, -2, "text");
        lua_createtable(L, s->length, 0);
        for (int i = 0; i < s->length; i++) {
            lua_pushinteger(L, it->tokens[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "tokens");
        lua_pushinteger(L, s->nfe), lua_setfield(L, -2, "nfe");
        lua_pushinteger(L, s->steps), lua_setfield(L, -2, "steps");
        lua_pushnumber(L, s->wall), lua_setfield(L, -2, "wall_time");
        lua_pushinteger(L, it->corrections), lua_setfield(L, -2, "corrections");
        lua_pushinteger(L, it->events), lua_setfield(L, -2, "events");
        lua_rawseti(L, -2, b + 1);
    }
}

int l_run_sample(lua_State *L) {
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    l_check_run(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, run_sample_keys);
    const run *r = l_check_run(L, 1);
    if (!r->m || !r->noise)
        return luaL_error(L,
                          "%s: run %d has no noise process (an 'ar' or 'mask' run samples with "
                          "run.model:generate)",
                          W, (int)r->id);
    run_sample_opts *o = push_opts(L);
    lua_getfield(L, 2, "schedule"); /* the training one, or an override (kept on the stack) */
    if (!lua_isnil(L, -1)) {
        o->h = l_to_schedule(L, lua_gettop(L));
        o->sched = l_schedule_instance(L, -1);
    }
    o->n = (int)l_opt_integer(L, 2, W, "n", 1);
    o->length = (int)l_opt_integer(L, 2, W, "length", r->m->cfg.seq_len);
    o->temperature = l_opt_number(L, 2, W, "temperature", 1.0);
    o->top_k = (int)l_opt_integer(L, 2, W, "top_k", 0);
    o->top_p = l_opt_number(L, 2, W, "top_p", 1.0);
    o->seed = (uint64_t)l_opt_integer(L, 2, W, "seed", 0);
    o->cache = l_opt_bool(L, 2, W, "cache", 1);
    o->events = l_opt_bool(L, 2, W, "events", 1);
    error e = {0};
    if (run_sample_check(r, o, &e) != HDLM_OK) return l_raise(L, &e);
    read_fixed(L, r, o);
    read_sampler(L, o);
    run_samples s;
    if (run_sample(r, l_plugins(L, L_CTX(L)), o, &s, &e) != HDLM_OK) return l_raise(L, &e);
    push_samples(L, &s);
    run_samples_free(&s);
    return 1;
}
