/* run:sample{...}: generate with a trained run's model, noise process and hyperschedule through a
 * sampler plugin, store every sample (and optionally its trajectory) in SQLite, and return them.
 *   run:sample{ sampler = {"acs", eta = 0.01}, n = 4, length = 128, temperature = 1, top_k = 0,
 *               top_p = 1, prompt = "The ", infill = { [10] = "x" }, seed = 1, cache = true,
 *               events = true, schedule = {...} }   -- schedule defaults to the training one */
#include "base/json.h"
#include "data/tokenizer.h"
#include "diffusion/sample.h"
#include "l_internal.h"
#include "nn/mask.h"

#include <stdlib.h>
#include <string.h>

typedef struct sampler_guard {
    plugin_instance *inst;
    sample_result res;
} sampler_guard;

static int sampler_guard_gc(lua_State *L) {
    sampler_guard *g = lua_touserdata(L, 1);
    plugin_instance_destroy(g->inst);
    sample_result_free(&g->res);
    g->inst = NULL;
    return 0;
}

static const char *const sample_keys[] = {"sampler", "n",        "length", "temperature", "top_k",
                                          "top_p",   "prompt",   "infill", "seed",        "cache",
                                          "events",  "schedule", NULL};

/* Reads a token sequence given as text (encoded with the model's tokenizer) or ids. Pushes a
 * userdata holding it; *n receives the length. */
static int32_t *read_tokens(lua_State *L, int idx, const tokenizer *tok, int32_t Vp,
                            const char *what, int *n) {
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (!tok->kind) luaL_error(L, "%s: the model has no tokenizer; give token ids", what);
        int32_t *ids = lua_newuserdatauv(L, (len ? len : 1) * sizeof *ids, 0);
        int64_t m = tokenizer_encode(tok, s, len, ids);
        if (m < 0) luaL_error(L, "%s: out of memory encoding %d bytes", what, (int)len);
        *n = (int)m;
        return ids;
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

static int first_id(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    if (ncol >= 1 && vals[0].type == STORE_INT) *(int64_t *)ud = vals[0].i;
    return 1;
}

int l_run_sample(lua_State *L) {
    const char *W = "run:sample";
    int64_t run_id;
    store *st = l_run_store(L, 1, &run_id);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, sample_keys);
    lua_getiuservalue(L, 1, 2); /* 3: model */
    lua_getiuservalue(L, 1, 3); /* 4: summary */
    lua_getiuservalue(L, 1, 4); /* 5: schedule */
    lua_getiuservalue(L, 1, 5); /* 6: noise guard */
    if (lua_isnil(L, 3) || lua_isnil(L, 6))
        return luaL_error(L,
                          "%s: run %d has no noise process (an 'ar' or 'mask' run samples with "
                          "run.model:generate)",
                          W, (int)run_id);
    tokenizer tok;
    model *m = l_model_of(L, 3, &tok);
    plugin_instance *noise = l_noise_of_guard(L, 6);
    if (!noise) return luaL_error(L, "%s: the run's noise process is gone", W);

    /* schedule: the training one, or an override */
    int sched_idx = 5;
    lua_getfield(L, 2, "schedule");
    if (!lua_isnil(L, -1)) {
        l_to_schedule(L, lua_gettop(L));
        sched_idx = lua_gettop(L);
    }
    const hyper *h = l_check_schedule(L, sched_idx);
    const plugin_instance *sp = l_schedule_instance(L, sched_idx);

    sample_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int n = (int)l_opt_integer(L, 2, W, "n", 1);
    cfg.L = (int)l_opt_integer(L, 2, W, "length", m->cfg.seq_len);
    cfg.temperature = l_opt_number(L, 2, W, "temperature", 1.0);
    cfg.top_k = (int)l_opt_integer(L, 2, W, "top_k", 0);
    cfg.top_p = l_opt_number(L, 2, W, "top_p", 1.0);
    cfg.seed = (uint64_t)l_opt_integer(L, 2, W, "seed", 0);
    cfg.cache = l_opt_bool(L, 2, W, "cache", 1);
    cfg.record_events = l_opt_bool(L, 2, W, "events", 1);
    if (n < 1 || n > 4096) return luaL_error(L, "%s: key 'n' must be in 1..4096, got %d", W, n);
    if (cfg.L < 1 || cfg.L > m->cfg.seq_len)
        return luaL_error(L, "%s: key 'length' must be in 1..%d (the model's seq_len), got %d", W,
                          m->cfg.seq_len, cfg.L);
    if (cfg.temperature < 0) return luaL_error(L, "%s: key 'temperature' must be >= 0", W);
    if (cfg.top_k < 0) return luaL_error(L, "%s: key 'top_k' must be >= 0", W);
    if (!(cfg.top_p > 0 && cfg.top_p <= 1))
        return luaL_error(L, "%s: key 'top_p' must be in (0, 1], got %f", W, cfg.top_p);
    lua_getfield(L, 4, "context");
    lua_getfield(L, 4, "block_type");
    cfg.context = mask_context_from_name(luaL_optstring(L, -2, "block_causal"));
    cfg.block_type = mask_block_from_name(luaL_optstring(L, -1, "full"));
    lua_pop(L, 2);
    lua_getfield(L, 4, "context_width");
    cfg.context_width = (int)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    cfg.B = n;

    /* fixed positions: a prompt prefix and infill tokens */
    int32_t Vp = m->cfg.vocab;
    int32_t *ftok = lua_newuserdatauv(L, (size_t)cfg.L * sizeof *ftok, 0);
    uint8_t *fixed = lua_newuserdatauv(L, (size_t)cfg.L, 0);
    memset(fixed, 0, (size_t)cfg.L);
    int any_fixed = 0;
    lua_getfield(L, 2, "prompt");
    if (!lua_isnil(L, -1)) {
        int np;
        int32_t *p = read_tokens(L, lua_gettop(L), &tok, Vp, "run:sample prompt", &np);
        if (np > cfg.L)
            return luaL_error(L, "%s: prompt has %d tokens, longer than length %d", W, np, cfg.L);
        for (int i = 0; i < np; i++)
            ftok[i] = p[i], fixed[i] = 1;
        any_fixed |= np > 0;
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
            if (!ok || pos < 1 || pos > cfg.L)
                return luaL_error(L, "%s: infill keys must be positions 1..%d", W, cfg.L);
            int nt;
            int32_t *p = read_tokens(L, lua_gettop(L), &tok, Vp, "run:sample infill", &nt);
            if (nt < 1 || pos - 1 + nt > cfg.L)
                return luaL_error(L, "%s: infill at %d does not fit in length %d", W, (int)pos,
                                  cfg.L);
            for (int i = 0; i < nt; i++)
                ftok[pos - 1 + i] = p[i], fixed[pos - 1 + i] = 1;
            any_fixed = 1;
            lua_pop(L, 2); /* ids userdata, value */
        }
    }
    lua_pop(L, 1);
    if (any_fixed) cfg.fixed = fixed, cfg.fixed_tok = ftok;

    /* the sampler */
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
    sampler_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    memset(g, 0, sizeof *g);
    if (luaL_newmetatable(L, "hdlm.SamplerGuard")) {
        lua_pushcfunction(L, sampler_guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    error e = {0};
    plugin_create_args sa = {.vocab = m->cfg.vocab - noise->info.n_extra,
                             .n_extra = noise->info.n_extra,
                             .mask_id = noise->info.mask_id};
    g->inst = l_plugin_from_spec(L, spec, HDLM_KIND_SAMPLER, "run:sample sampler", &sa);
    const char *sname = g->inst->entry->desc->name;

    if (sample_run(m, h, noise->self, noise->ops, noise->entry->desc->name, g->inst->self,
                   g->inst->ops, sname, &cfg, &g->res, &e) != HDLM_OK)
        return l_raise(L, &e);

    /* the checkpoint the weights came from: the run's newest (what db:train ended with, and
     * what hdlm_run.load attaches) */
    int64_t ck_id = 0;
    {
        store_value p = {.type = STORE_INT, .i = run_id};
        error ce = {0};
        if (store_query_params(st,
                               "SELECT id FROM checkpoints WHERE run_id = ? ORDER BY step DESC, id "
                               "DESC LIMIT 1",
                               1, &p, first_id, &ck_id, &ce) != HDLM_OK)
            return l_raise(L, &ce);
    }
    /* store every sample with its provenance and trajectory */
    char *nj = l_plugin_json(noise), *sj = l_plugin_json(g->inst);
    char *hj = sp ? l_plugin_json(sp) : NULL;
    /* the tokenizer's name quoted as JSON: a bpe:DIR path may hold any character */
    json_buf tok_json = {0};
    json_buf_str(&tok_json, tok.kind ? tokenizer_label(&tok) : "none");
    char settings[5120];
    snprintf(settings, sizeof settings,
             "{\"temperature\":%.17g,\"top_k\":%d,\"top_p\":%.17g,\"length\":%d,\"cache\":%s,"
             "\"kv_cache_used\":%s,\"draws\":\"float64 inverse CDF\",\"weights\":\"ema\","
             "\"fixed_positions\":%s,\"tokenizer\":%s,\"context\":\"%s\","
             "\"block_type\":\"%s\",\"context_width\":%d}",
             cfg.temperature, cfg.top_k, cfg.top_p, cfg.L, cfg.cache ? "true" : "false",
             g->res.cache_used ? "true" : "false", any_fixed ? "true" : "false",
             tok_json.data ? tok_json.data : "\"none\"", mask_context_name(cfg.context),
             cfg.block_type == MASK_BLOCK_CAUSAL ? "causal" : "full",
             hyper_mask_width(h, cfg.L, cfg.context_width));
    json_buf hlua = {0};
    if (!hj) {
        json_buf_raw(&hlua, "{\"name\":");
        json_buf_str(&hlua, h->name ? h->name : "lua");
        json_buf_raw(&hlua, ",\"version\":\"lua\",\"options\":{}}");
    }
    size_t cap = tokenizer_decode_cap(&tok, (size_t)cfg.L);
    char *text = malloc(cap);
    store_event *ev = malloc(((size_t)g->res.n_events + 1) * sizeof *ev);
    lua_createtable(L, n, 0);
    int out = lua_gettop(L);
    int rc = text && ev ? HDLM_OK : error_set(&e, HDLM_ENOMEM, "run:sample: out of memory");
    for (int b = 0; b < n && rc == HDLM_OK; b++) {
        const int32_t *ids = g->res.tokens + (size_t)b * cfg.L;
        tokenizer_decode(&tok, ids, (size_t)cfg.L, text, cap);
        int64_t ne = 0, corrections = 0;
        for (int64_t k = 0; k < g->res.n_events; k++) {
            const sample_event *se = &g->res.events[k];
            if (se->b != b) continue;
            ev[ne++] =
                (store_event){se->step, se->pos, se->old_tok, se->new_tok, se->prob, se->kind};
            corrections += se->kind == HDLM_EVENT_CORRECT;
        }
        store_sample_info si = {
            .run_id = run_id,
            .checkpoint_id = ck_id,
            .text = text,
            .tokens = ids,
            .n_tokens = cfg.L,
            .sampler = sj,
            .schedule = hj ? hj : hlua.data,
            .noise = nj,
            .settings_json = settings,
            .seed = (int64_t)cfg.seed,
            .steps = g->res.steps,
            .nfe = g->res.nfe,
            .wall_time = g->res.wall / n,
        };
        int64_t sid = 0;
        rc = store_sample(st, &si, ev, ne, &sid, &e);
        if (rc != HDLM_OK) break;
        lua_createtable(L, 0, 8);
        lua_pushinteger(L, sid);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, text);
        lua_setfield(L, -2, "text");
        lua_createtable(L, cfg.L, 0);
        for (int i = 0; i < cfg.L; i++) {
            lua_pushinteger(L, ids[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "tokens");
        lua_pushinteger(L, g->res.nfe);
        lua_setfield(L, -2, "nfe");
        lua_pushinteger(L, g->res.steps);
        lua_setfield(L, -2, "steps");
        lua_pushnumber(L, g->res.wall);
        lua_setfield(L, -2, "wall_time");
        lua_pushinteger(L, corrections);
        lua_setfield(L, -2, "corrections");
        lua_pushinteger(L, ne);
        lua_setfield(L, -2, "events");
        lua_rawseti(L, out, b + 1);
    }
    free(text);
    free(ev);
    free(nj);
    free(sj);
    free(hj);
    json_buf_free(&hlua);
    json_buf_free(&tok_json);
    if (rc != HDLM_OK) return l_raise(L, &e);
    return 1;
}
