/* Lua bindings of the store: hdlm.open(path) -> Store; Store:run{...} -> Run; Store:query(sql,
 * ...) -> rows; Store:compare{a =, b =} -> paired bound difference (store/compare.h);
 * Run:log(step, name, value | table); Run:finish(); Run:fail(msg). A run that is
 * still open when the script fails is marked failed with the error (see lua_host.c).
 * Under mpirun every rank runs the script; rank 0 alone writes the database. The others open it
 * as followers (writes dropped, reads read-only) after rank 0 has created it, and take rank 0's
 * run ids, so a script runs unchanged: hdlm.open, db:run and db:train are collective calls there,
 * and run:sample / run:eval / run:gen_eval are computed by rank 0 for all (l_dist.c).
 * hdlm.rank and hdlm.world_size tell a script which process it is. */
#include "base/interrupt.h"
#include "data/tokfile.h"
#include "dist/dist.h"
#include "l_internal.h"
#include "run/run_train.h"
#include "store/compare.h"
#include "store/store.h"
#include "tensor/blas.h"

#include <stdlib.h>
#include <string.h>

#define STORE_MT "hdlm.Store"
#define RUN_MT   "hdlm.Run"

struct l_run {
    run r; /* r.st borrowed from the Store userdata (kept alive by uservalue 1), r.id the row */
    int open;
    l_run *next; /* in ctx->open_runs */
    l_ctx *ctx;
};

typedef struct l_store {
    store *st;
} l_store;

static l_store *check_store(lua_State *L, int idx) {
    l_store *s = luaL_checkudata(L, idx, STORE_MT);
    if (!s->st) luaL_error(L, "store is closed");
    return s;
}

static l_run *check_run(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, RUN_MT);
}

static l_run *check_open_store(lua_State *L, int idx) {
    l_run *r = check_run(L, idx);
    lua_getiuservalue(L, idx, 1);
    l_store *s = luaL_testudata(L, -1, STORE_MT);
    lua_pop(L, 1); /* the Run keeps the Store alive */
    if (!s || !s->st) luaL_error(L, "run %d: its store is closed", (int)r->r.id);
    return r;
}

run *l_check_run(lua_State *L, int idx) {
    return &check_open_store(L, idx)->r;
}

const run *l_run_parts(lua_State *L, int idx, const char *what) {
    l_run *r = check_open_store(L, idx);
    if (!r->r.m || !r->r.noise)
        luaL_error(L,
                   "%s: run %d has no model with a noise process (train it with noise = and "
                   "schedule =, or attach it with hdlm_run.load)",
                   what, (int)r->r.id);
    return &r->r;
}

static void run_unlink(l_run *r) {
    if (!r->ctx) return;
    for (l_run **p = &r->ctx->open_runs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    r->next = NULL;
}

static int run_end(l_run *r, const char *status, const char *msg, error *e) {
    if (!r->open) return HDLM_OK;
    r->open = 0;
    run_unlink(r);
    return store_run_end(r->r.st, r->r.id, status, msg, e);
}

void l_runs_end_all(l_ctx *c, const char *status, const char *error_text) {
    while (c->open_runs) {
        error e = {0};
        l_run *r = c->open_runs;
        if (run_end(r, status, error_text, &e) != HDLM_OK)
            fprintf(stderr, "hdlm: could not mark run %lld %s: %s\n", (long long)r->r.id, status,
                    e.msg);
    }
}

/* ---- Store ---- */

static int l_open(lua_State *L) {
    l_ctx *c = L_CTX(L);
    const char *path = luaL_optstring(L, 1, c->db_path ? c->db_path : "runs.db");
    l_store *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->st = NULL;
    luaL_setmetatable(L, STORE_MT);
    error e = {0};
    int rc = HDLM_OK;
    if (dist_rank() == 0) {
        rc = store_open(path, 0, &s->st, &e);
        if (rc == HDLM_OK) rc = store_reap_runs(s->st, &e);
    }
    /* the followers read the file rank 0 has created and migrated */
    error be = {0};
    if (dist_barrier(&be) != HDLM_OK && rc == HDLM_OK) {
        e = be;
        rc = be.code;
    }
    if (dist_rank() > 0 && rc == HDLM_OK) rc = store_open(path, STORE_FOLLOWER, &s->st, &e);
    if (rc != HDLM_OK) return l_raise(L, &e);
    return 1;
}

static int store_gc(lua_State *L) {
    l_store *s = luaL_checkudata(L, 1, STORE_MT);
    store_close(s->st);
    s->st = NULL;
    return 0;
}

static int store_tostring(lua_State *L) {
    l_store *s = luaL_checkudata(L, 1, STORE_MT);
    lua_pushfstring(L, "hdlm.Store(%s)", s->st ? store_path(s->st) : "closed");
    return 1;
}

/* Pushes a Run userdata for row id of the Store at store_idx. open: the script may log to it, and
 * it ends with the script (done, or failed with the script's error). */
static l_run *push_run(lua_State *L, int store_idx, int64_t id, int open) {
    l_ctx *c = L_CTX(L);
    l_store *s = check_store(L, store_idx);
    l_run *r = lua_newuserdatauv(L, sizeof *r, 4); /* store, model, summary, schedule */
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, RUN_MT);
    lua_pushvalue(L, store_idx);
    lua_setiuservalue(L, -2, 1); /* keep the Store alive as long as the Run */
    r->r.id = id;
    r->r.st = s->st;
    r->ctx = c;
    if (open) {
        r->open = 1;
        r->next = c->open_runs;
        c->open_runs = r;
    }
    return r;
}

/* Begins a run row for (kind, name, seed, config JSON) with the script's provenance and content.
 * Pushes the Run. */
static l_run *begin_run(lua_State *L, int store_idx, const char *name, const char *kind,
                        long long seed, const char *config, int64_t resumed_from) {
    l_ctx *c = L_CTX(L);
    l_store *s = check_store(L, store_idx);
    run_script scr = {c->script, c->script_text, c->script_bytes,
                      c->script_sha256[0] ? c->script_sha256 : NULL};
    int64_t id = 0;
    error e = {0};
    if (run_begin(s->st, &scr, name, kind, seed, config, resumed_from, &id, &e) != HDLM_OK)
        l_raise(L, &e);
    return push_run(L, store_idx, id, 1);
}

static const char *const run_keys[] = {"name", "kind", "config", "seed", NULL};

static int store_run(lua_State *L) {
    check_store(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, "db:run", run_keys);
    const char *name = l_opt_string(L, 2, "db:run", "name", NULL);
    const char *kind = l_opt_string(L, 2, "db:run", "kind", "script");
    long long seed = l_opt_integer(L, 2, "db:run", "seed", 0);
    lua_getfield(L, 2, "config");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        return luaL_error(L, "db:run: key 'config' must be a table, got %s", luaL_typename(L, -1));
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    l_push_json(L, -1);
    begin_run(L, 1, name, kind, seed, lua_tostring(L, -1), 0);
    return 1;
}

static int count_row(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names, (void)vals;
    (*(int *)ud)++;
    return 0;
}

static int train_protected(lua_State *L) {
    /* 1 = Training, 2 = Run, 3 = the run whose history a no-step call reports */
    l_train_execute(L, 1, 2, 1, (int64_t)lua_tointeger(L, 3));
    return 0;
}

/* db:train{...} -> Run (finished) with run.model and run.summary. Which row it writes to:
 * run/run_train.h (run_train_choose). */
static int store_train(lua_State *L) {
    l_store *s = check_store(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "data");
    const corpus *data = l_check_corpus(L, -1);
    int corpus_idx = lua_gettop(L);
    const char *name = l_opt_string(L, 2, "db:train", "name", NULL);
    long long seed = l_opt_integer(L, 2, "db:train", "seed", 0);
    /* every refusal (a typo, a bad value, a checkpoint of another config) happens here, before
     * a row exists */
    l_train_prepare(L, 2, corpus_idx, data);
    int prep_idx = lua_gettop(L);
    const run_train_info *ti = l_train_info_of(L, prep_idx);
    run_train_target target;
    error e = {0};
    if (run_train_choose(s->st, ti, name, &target, &e) != HDLM_OK) return l_raise(L, &e);
    if (target.mode == RUN_TRAIN_EXISTING) {
        push_run(L, 1, target.id, 0);
        l_train_execute(L, prep_idx, lua_gettop(L), 0, target.id);
        if (dist_rank() == 0)
            fprintf(stderr,
                    "hdlm: run %lld already trained to step %lld in %s; returning it (no new "
                    "run)\n",
                    (long long)target.id, (long long)ti->step, ti->ckpt_dir);
        return 1;
    }
    l_run *r;
    if (target.mode == RUN_TRAIN_CONTINUE) {
        r = push_run(L, 1, target.id, 1);
        if (dist_rank() == 0)
            fprintf(stderr, "hdlm: continuing run %lld from step %lld\n", (long long)target.id,
                    (long long)ti->step);
    } else {
        r = begin_run(L, 1, name, "train", seed, ti->config_json, target.from);
    }
    int run_idx = lua_gettop(L);
    lua_pushcfunction(L, train_protected);
    lua_pushvalue(L, prep_idx);
    lua_pushvalue(L, run_idx);
    lua_pushinteger(L, (lua_Integer)(target.from ? target.from : r->r.id));
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
        /* a graceful stop (interrupt.h) is not a failure: the run resumes from its checkpoint */
        run_end(r, interrupt_signal() ? "interrupted" : "failed", lua_tostring(L, -1), &e);
        return lua_error(L);
    }
    if (run_end(r, "done", NULL, &e) != HDLM_OK) return l_raise(L, &e);
    /* followers' queries after training see what rank 0 has just flushed */
    if (dist_barrier(&e) != HDLM_OK) return l_raise(L, &e);
    lua_settop(L, run_idx);
    return 1;
}

/* db:attach{run = id, model =, noise =, schedule =, ...} -> Run for sampling a stored run */
static int store_attach(lua_State *L) {
    l_ctx *c = L_CTX(L);
    l_store *s = check_store(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    long long id = l_opt_integer(L, 2, "db:attach", "run", 0);
    store_value p = {.type = STORE_INT, .i = id};
    int found = 0;
    error e = {0};
    if (store_query_params(s->st, "SELECT 1 FROM runs WHERE id = ?", 1, &p, count_row, &found,
                           &e) != HDLM_OK)
        return l_raise(L, &e);
    if (!found) return luaL_error(L, "db:attach: no run %d in %s", (int)id, store_path(s->st));
    (void)c;
    push_run(L, 1, id, 0);
    return l_attach_run(L, lua_gettop(L));
}

/* require("hdlm_run").load(db, id) -> Run, {path =, step =}: a stored run brought back from its
 * newest checkpoint (run/run.h: run_load), ready to sample and evaluate. */
static int hdlm_run_load(lua_State *L) {
    int isint;
    lua_Integer id = lua_tointegerx(L, 2, &isint);
    if (!isint)
        return luaL_error(L, "run id must be an integer, got %s", luaL_tolstring(L, 2, NULL));
    l_store *s = check_store(L, 1);
    l_run *r = push_run(L, 1, id, 0);
    int run_idx = lua_gettop(L);
    error e = {0};
    if (run_load(s->st, id, l_plugins(L, L_CTX(L)), &r->r, &e) != HDLM_OK) return l_raise(L, &e);
    /* the weights move into a Model userdata: run.model is an ordinary Model */
    l_push_model(L, r->r.own_model, &r->r.tok, r->r.objective);
    free(r->r.own_model);
    r->r.own_model = NULL;
    r->r.m = l_model_of(L, -1, NULL);
    lua_setiuservalue(L, run_idx, 2);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, r->r.ckpt_path);
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, (lua_Integer)r->r.ckpt_step);
    lua_setfield(L, -2, "step");
    return 2;
}

int l_open_hdlm_run(lua_State *L) {
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, hdlm_run_load, 1);
    lua_setfield(L, -2, "load");
    return 1;
}

typedef struct rows_ud {
    lua_State *L;
    int tbl;
    lua_Integer n;
} rows_ud;

static int push_row(void *ud, int ncol, const char *const *names, const store_value *vals) {
    rows_ud *u = ud;
    lua_State *L = u->L;
    lua_createtable(L, 0, ncol);
    for (int i = 0; i < ncol; i++) {
        switch (vals[i].type) {
        case STORE_INT:
            lua_pushinteger(L, (lua_Integer)vals[i].i);
            break;
        case STORE_REAL:
            lua_pushnumber(L, vals[i].d);
            break;
        case STORE_TEXT:
        case STORE_BLOB:
            lua_pushlstring(L, vals[i].s, (size_t)vals[i].len);
            break;
        default:
            lua_pushnil(L);
            break;
        }
        lua_setfield(L, -2, names[i]);
    }
    lua_rawseti(L, u->tbl, ++u->n);
    return 0;
}

/* db:query(sql, p1, p2, ...) -> array of rows (tables keyed by column name) */
static int store_query_l(lua_State *L) {
    l_store *s = check_store(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    int np = lua_gettop(L) - 2;
    if (np > 64) return luaL_error(L, "db:query: at most 64 parameters, got %d", np);
    store_value params[64];
    for (int i = 0; i < np; i++) {
        int idx = 3 + i;
        memset(&params[i], 0, sizeof params[i]);
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            params[i].type = STORE_NULL;
            break;
        case LUA_TBOOLEAN:
            params[i].type = STORE_INT;
            params[i].i = lua_toboolean(L, idx);
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx)) {
                params[i].type = STORE_INT;
                params[i].i = lua_tointeger(L, idx);
            } else {
                params[i].type = STORE_REAL;
                params[i].d = lua_tonumber(L, idx);
            }
            break;
        case LUA_TSTRING: {
            size_t len;
            params[i].type = STORE_TEXT;
            params[i].s = lua_tolstring(L, idx, &len);
            params[i].len = (int64_t)len;
            break;
        }
        default:
            return luaL_error(
                L, "db:query: parameter %d must be nil, boolean, number or string, got %s", i + 1,
                luaL_typename(L, idx));
        }
    }
    lua_newtable(L);
    rows_ud u = {L, lua_gettop(L), 0};
    error e = {0};
    if (store_query_params(s->st, sql, np, params, push_row, &u, &e) != HDLM_OK)
        return l_raise(L, &e);
    return 1;
}

static void push_side(lua_State *L, const compare_side *c) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)c->run_id), lua_setfield(L, -2, "run");
    lua_pushstring(L, c->run_name), lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)c->evaluation_id), lua_setfield(L, -2, "evaluation");
    lua_pushnumber(L, c->value), lua_setfield(L, -2, "nats");
    lua_pushnumber(L, c->se), lua_setfield(L, -2, "se");
    lua_pushinteger(L, (lua_Integer)c->n), lua_setfield(L, -2, "n");
}

/* db:compare{a = id, b = id} -> { bound = {a=, b=, diff=, se=, unpaired_se=, n=, a_lower=,
 * estimator=, split=, length=, sequences_sha256=} or nil, gen = {a=, b=, diff=, se=, judge_run=}
 * or nil, note = why a part is missing }; raises what `hdlm compare` refuses. */
static const char *const compare_keys[] = {"a", "b", NULL};

static int store_compare_l(lua_State *L) {
    l_store *s = check_store(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, "db:compare", compare_keys);
    long long a = l_opt_integer(L, 2, "db:compare", "a", 0);
    long long b = l_opt_integer(L, 2, "db:compare", "b", 0);
    if (a < 1 || b < 1) return luaL_error(L, "db:compare: keys 'a' and 'b' must be run ids");
    compare_result r;
    error e = {0};
    if (store_compare(s->st, a, b, &r, &e) != HDLM_OK) return l_raise(L, &e);
    lua_createtable(L, 0, 3);
    if (r.has_bound) {
        lua_createtable(L, 0, 12);
        push_side(L, &r.a), lua_setfield(L, -2, "a");
        push_side(L, &r.b), lua_setfield(L, -2, "b");
        lua_pushnumber(L, r.diff), lua_setfield(L, -2, "diff");
        lua_pushnumber(L, r.diff_se), lua_setfield(L, -2, "se");
        lua_pushnumber(L, r.unpaired_se), lua_setfield(L, -2, "unpaired_se");
        lua_pushinteger(L, (lua_Integer)r.a.n), lua_setfield(L, -2, "n");
        lua_pushinteger(L, (lua_Integer)r.a_lower), lua_setfield(L, -2, "a_lower");
        lua_pushstring(L, r.estimator), lua_setfield(L, -2, "estimator");
        lua_pushstring(L, r.split), lua_setfield(L, -2, "split");
        lua_pushinteger(L, (lua_Integer)r.length), lua_setfield(L, -2, "length");
        lua_pushstring(L, r.sequences_sha256), lua_setfield(L, -2, "sequences_sha256");
        lua_setfield(L, -2, "bound");
    }
    if (r.has_gen) {
        lua_createtable(L, 0, 5);
        push_side(L, &r.gen_a), lua_setfield(L, -2, "a");
        push_side(L, &r.gen_b), lua_setfield(L, -2, "b");
        lua_pushnumber(L, r.gen_diff), lua_setfield(L, -2, "diff");
        lua_pushnumber(L, r.gen_diff_se), lua_setfield(L, -2, "se");
        lua_pushinteger(L, (lua_Integer)r.judge_run), lua_setfield(L, -2, "judge_run");
        lua_setfield(L, -2, "gen");
    }
    if (r.note[0]) lua_pushstring(L, r.note), lua_setfield(L, -2, "note");
    return 1;
}

static int store_close_l(lua_State *L) {
    l_store *s = luaL_checkudata(L, 1, STORE_MT);
    l_ctx *c = L_CTX(L);
    /* runs of this store that are still open end as done: closing is an explicit choice */
    for (l_run *r = c->open_runs; r;) {
        l_run *next = r->next;
        if (r->r.st == s->st) {
            error e = {0};
            if (run_end(r, "done", NULL, &e) != HDLM_OK) return l_raise(L, &e);
        }
        r = next;
    }
    store_close(s->st);
    s->st = NULL;
    return 0;
}

static int store_index(lua_State *L) {
    l_store *s = luaL_checkudata(L, 1, STORE_MT);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "path")) {
        lua_pushstring(L, s->st ? store_path(s->st) : NULL);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__methods");
    lua_getfield(L, -1, k);
    return 1;
}

/* ---- Run ---- */

static int run_log(lua_State *L) {
    l_run *r = check_run(L, 1);
    if (!r->open) return luaL_error(L, "run:log: run %d is already finished", (int)r->r.id);
    lua_Integer step = luaL_checkinteger(L, 2);
    error e = {0};
    if (lua_type(L, 3) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER)
                return luaL_error(L, "run:log: the table must map metric names to numbers");
            if (store_metric(r->r.st, r->r.id, step, lua_tostring(L, -2), lua_tonumber(L, -1),
                             &e) != HDLM_OK)
                return l_raise(L, &e);
            lua_pop(L, 1);
        }
        return 0;
    }
    const char *name = luaL_checkstring(L, 3);
    double v = luaL_checknumber(L, 4);
    if (store_metric(r->r.st, r->r.id, step, name, v, &e) != HDLM_OK) return l_raise(L, &e);
    return 0;
}

static int run_finish(lua_State *L) {
    l_run *r = check_run(L, 1);
    static const char *const st[] = {"done", "failed", "interrupted", NULL};
    int i = luaL_checkoption(L, 2, "done", st);
    const char *msg = luaL_optstring(L, 3, NULL);
    error e = {0};
    if (run_end(r, st[i], msg, &e) != HDLM_OK) return l_raise(L, &e);
    return 0;
}

static int run_fail(lua_State *L) {
    l_run *r = check_run(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    error e = {0};
    if (run_end(r, "failed", msg, &e) != HDLM_OK) return l_raise(L, &e);
    return 0;
}

static int run_close(lua_State *L) { /* __close: a to-be-closed run ends as done (or failed) */
    l_run *r = check_run(L, 1);
    error e = {0};
    if (!lua_isnil(L, 2))
        run_end(r, "failed", luaL_tolstring(L, 2, NULL), &e);
    else
        run_end(r, "done", NULL, &e);
    return 0;
}

static int run_gc(lua_State *L) {
    l_run *r = check_run(L, 1);
    /* collected while still open: the script lost its handle; the host ends open runs at exit,
     * so only unlink here and let l_runs_end_all see it first */
    if (r->open) {
        error e = {0};
        run_end(r, "done", NULL, &e);
    }
    run_free(&r->r); /* its noise process and what run_load made */
    return 0;
}

static int run_index(lua_State *L) {
    l_run *r = check_run(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "id")) {
        lua_pushinteger(L, (lua_Integer)r->r.id);
        return 1;
    }
    if (!strcmp(k, "open")) {
        lua_pushboolean(L, r->open);
        return 1;
    }
    if (!strcmp(k, "model")) {
        lua_getiuservalue(L, 1, 2);
        return 1;
    }
    if (!strcmp(k, "summary")) {
        lua_getiuservalue(L, 1, 3);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__methods");
    lua_getfield(L, -1, k);
    return 1;
}

static int run_tostring(lua_State *L) {
    l_run *r = check_run(L, 1);
    lua_pushfstring(L, "hdlm.Run(%d%s)", (int)r->r.id, r->open ? ", open" : "");
    return 1;
}

/* Bindings whose results go through the store: rank 0 computes them for every rank. */
static int run_sample_l(lua_State *L) {
    return l_on_rank0(L, l_run_sample);
}

static int run_eval_l(lua_State *L) {
    return l_on_rank0(L, l_run_eval);
}

static int run_gen_eval_l(lua_State *L) {
    return l_on_rank0(L, l_run_gen_eval);
}

static void new_class(lua_State *L, int ctx_idx, const char *name, const luaL_Reg *methods,
                      const luaL_Reg *meta) {
    luaL_newmetatable(L, name);
    lua_pushvalue(L, ctx_idx);
    luaL_setfuncs(L, meta, 1);
    lua_newtable(L);
    lua_pushvalue(L, ctx_idx);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
}

void l_store_register(lua_State *L, int ctx_idx) {
    static const luaL_Reg store_methods[] = {{"run", store_run},
                                             {"train", store_train},
                                             {"query", store_query_l},
                                             {"attach", store_attach},
                                             {"compare", store_compare_l},
                                             {"close", store_close_l},
                                             {NULL, NULL}};
    static const luaL_Reg store_meta[] = {{"__gc", store_gc},
                                          {"__close", store_close_l},
                                          {"__index", store_index},
                                          {"__tostring", store_tostring},
                                          {NULL, NULL}};
    static const luaL_Reg run_methods[] = {{"log", run_log},     {"finish", run_finish},
                                           {"fail", run_fail},   {"sample", run_sample_l},
                                           {"eval", run_eval_l}, {"gen_eval", run_gen_eval_l},
                                           {NULL, NULL}};
    static const luaL_Reg run_meta[] = {{"__gc", run_gc},
                                        {"__close", run_close},
                                        {"__index", run_index},
                                        {"__tostring", run_tostring},
                                        {NULL, NULL}};
    new_class(L, ctx_idx, STORE_MT, store_methods, store_meta);
    new_class(L, ctx_idx, RUN_MT, run_methods, run_meta);
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_open, 1);
    lua_setfield(L, -2, "open");
    lua_pushinteger(L, dist_rank());
    lua_setfield(L, -2, "rank");
    lua_pushinteger(L, dist_size());
    lua_setfield(L, -2, "world_size");
}
