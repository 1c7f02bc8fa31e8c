/* Lua bindings of hyperschedules:
 *   hdlm.schedule{"block_annealing", width=4, tau=4}     -> Schedule over a schedule plugin
 *   hdlm.schedule{levels=function(step, L) ... end, n_steps=..., n_levels=W, ...}
 *   hdlm.schedule{levels={{...}, {...}}, n_levels=W, ...} -> Schedule written in Lua
 *   s:n_steps(L), s:levels(step, L), s:times(step, L, {eps=}), s:mask(step, L, {...})
 * Either kind is a `hyper` (diffusion/hyper.h) owned by the userdata: a plugin instance and its
 * ops, or this file's own schedule ops (lua_sched_ops) over the Lua callbacks, so a Lua schedule
 * works wherever a plugin does; l_check_schedule/l_to_schedule hand it to other bindings. */
#include "diffusion/hyper.h"
#include "l_internal.h"
#include "nn/mask.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEDULE_MT  "hdlm.Schedule"
#define L_MAX_LEN    (1 << 24) /* longest sequence the Lua API accepts */
#define L_MAX_MASK   16384     /* mask strings are L x L characters */
#define L_MAX_LEVELS (1 << 24) /* largest W of a Lua schedule */

typedef struct l_schedule {
    hyper h;
    plugin_instance *inst; /* plugin source (owned), or NULL for a Lua source */
    /* ---- Lua source ---- */
    lua_State *L;          /* state the callbacks run on: the caller's, set at every entry */
    int levels_ref;        /* levels(step, L) function, or LUA_NOREF (table form) */
    int n_steps_ref;       /* n_steps(L) function, or LUA_NOREF (constant) */
    int64_t n_steps_const; /* table form: number of rows; or the integer n_steps */
    int32_t *rows;         /* (n_rows, row_len) table form levels, steps 1..n_rows */
    int64_t *settled;      /* (n_rows) table form settled counts, or NULL (derived) */
    int64_t row_len;
    int32_t W;
    uint32_t growth;
    int64_t block;
    int continuous; /* trains in continuous time (HDLM_INFO_CONTINUOUS) */
    char name[128];
    char err[600]; /* last n_steps failure, reported by the callers that see n_steps < 0 */
} l_schedule;

/* luaL_error with printf formats (lua_pushfstring knows neither %lld nor %g). */
static int fail(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(lua_State *L, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return luaL_error(L, "%s", msg);
}

/* ---- the schedule ops of a Lua schedule (hdlm/plugin.h; self = the l_schedule) ---- */

static int32_t lua_sched_n_levels(void *self) {
    return ((l_schedule *)self)->W;
}

static uint32_t lua_sched_growth(void *self, int64_t *block) {
    const l_schedule *s = self;
    *block = s->block;
    return s->growth;
}

/* The number of steps, or -1 with the reason in s->err. Never raises: it runs under C callers
 * (hyper_levels, the trainer) that must not be unwound by a Lua error. */
static int64_t lua_sched_n_steps(void *self, int64_t len) {
    l_schedule *s = self;
    if (s->rows) {
        if (len > s->row_len) {
            snprintf(s->err, sizeof s->err,
                     "its level rows have %lld positions, L = %lld is longer",
                     (long long)s->row_len, (long long)len);
            return -1;
        }
        return s->n_steps_const;
    }
    if (s->n_steps_ref == LUA_NOREF) return s->n_steps_const;
    lua_State *L = s->L;
    if (!lua_checkstack(L, 4)) {
        snprintf(s->err, sizeof s->err, "Lua stack overflow");
        return -1;
    }
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->n_steps_ref);
    lua_pushinteger(L, (lua_Integer)len);
    int64_t n = -1;
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        snprintf(s->err, sizeof s->err, "n_steps(%lld) raised: %s", (long long)len,
                 msg ? msg : "(error object is not a string)");
    } else {
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < 0)
            snprintf(s->err, sizeof s->err,
                     "n_steps(%lld) returned %s, expected a non-negative integer", (long long)len,
                     lua_type(L, -1) == LUA_TNUMBER ? "a negative or "
                                                      "non-integral number"
                                                    : luaL_typename(L, -1));
        else
            n = (int64_t)v;
    }
    lua_settop(L, top);
    return n;
}

/* Reads the levels table at the top of the stack (raw access only: nothing here can raise). */
static int read_levels(lua_State *L, const l_schedule *s, int64_t len, int32_t *level, char *err,
                       size_t cap) {
    if (!lua_istable(L, -1)) {
        snprintf(err, cap, "levels() returned %s, expected a table of %lld levels",
                 luaL_typename(L, -1), (long long)len);
        return HDLM_ELUA;
    }
    lua_Unsigned n = lua_rawlen(L, -1);
    if ((int64_t)n != len) {
        snprintf(err, cap, "levels() returned %llu levels, expected L = %lld",
                 (unsigned long long)n, (long long)len);
        return HDLM_ELUA;
    }
    for (int64_t i = 0; i < len; i++) {
        lua_rawgeti(L, -1, (lua_Integer)(i + 1));
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint || v < 0 || v > s->W) {
            snprintf(err, cap, "level [%lld] must be an integer in 0..%d", (long long)(i + 1),
                     (int)s->W);
            return HDLM_ELUA;
        }
        level[i] = (int32_t)v;
    }
    return HDLM_OK;
}

static int64_t zero_prefix(const int32_t *row, int64_t len) {
    int64_t z = 0;
    while (z < len && row[z] == 0)
        z++;
    return z;
}

/* Errors go to err without the schedule's name and step: hyper_levels puts them in front. */
static int lua_sched_levels(void *self, int64_t step, int64_t len, int32_t *level,
                            int64_t *n_settled, char *err, size_t cap) {
    l_schedule *s = self;
    int64_t n = lua_sched_n_steps(s, len);
    if (n < 0) {
        snprintf(err, cap, "%s", s->err);
        return HDLM_ELUA;
    }
    if (step < 0 || step > n) {
        snprintf(err, cap, "step %lld is outside 0..%lld for L = %lld", (long long)step,
                 (long long)n, (long long)len);
        return HDLM_EINVAL;
    }
    if (step == 0) { /* the initial state is implied: everything fully noised */
        for (int64_t i = 0; i < len; i++)
            level[i] = s->W;
        *n_settled = 0;
        return HDLM_OK;
    }
    if (s->rows) {
        const int32_t *row = s->rows + (step - 1) * s->row_len;
        memcpy(level, row, (size_t)len * sizeof *level);
        int64_t ns;
        if (s->settled)
            ns = s->settled[step - 1];
        else /* settled the step after reaching level 0, as in block annealing */
            ns = step == 1 ? 0 : zero_prefix(row - s->row_len, len);
        *n_settled = ns < len ? ns : len;
        return HDLM_OK;
    }
    lua_State *L = s->L;
    if (!lua_checkstack(L, 6)) {
        snprintf(err, cap, "Lua stack overflow");
        return HDLM_ELUA;
    }
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->levels_ref);
    lua_pushinteger(L, (lua_Integer)step);
    lua_pushinteger(L, (lua_Integer)len);
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, cap, "levels() raised: %s", msg ? msg : "(error object is not a string)");
        lua_settop(L, top);
        return HDLM_ELUA;
    }
    int isint = 0;
    lua_Integer ns = lua_tointegerx(L, -1, &isint);
    int rc = HDLM_OK;
    if (!isint) {
        snprintf(err, cap,
                 "levels() must return (levels, n_settled); n_settled is %s, expected an integer",
                 luaL_typename(L, -1));
        rc = HDLM_ELUA;
    }
    lua_pop(L, 1);
    if (rc == HDLM_OK) rc = read_levels(L, s, len, level, err, cap);
    lua_settop(L, top);
    if (rc == HDLM_OK) *n_settled = (int64_t)ns; /* range checked by hyper_levels */
    return rc;
}

/* The instance's facts: continuous time when the schedule says so (`continuous = true`). */
static void lua_sched_info(void *self, hdlm_info *info) {
    info->flags = ((const l_schedule *)self)->continuous ? HDLM_INFO_CONTINUOUS : 0;
}

static const hdlm_schedule_ops lua_sched_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = lua_sched_info},
    .n_levels = lua_sched_n_levels,
    .n_steps = lua_sched_n_steps,
    .levels = lua_sched_levels,
    .growth = lua_sched_growth,
};

/* ---- userdata ---- */

static l_schedule *check_sched(lua_State *L, int idx) {
    l_schedule *s = luaL_checkudata(L, idx, SCHEDULE_MT);
    s->L = L; /* callbacks run on the state that is calling now */
    return s;
}

const hyper *l_check_schedule(lua_State *L, int idx) {
    return &check_sched(L, idx)->h;
}

const plugin_instance *l_schedule_instance(lua_State *L, int idx) {
    return check_sched(L, idx)->inst;
}

static int sched_gc(lua_State *L) {
    l_schedule *s = luaL_checkudata(L, 1, SCHEDULE_MT);
    plugin_instance_destroy(s->inst);
    s->inst = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, s->levels_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->n_steps_ref);
    s->levels_ref = s->n_steps_ref = LUA_NOREF;
    free(s->rows);
    free(s->settled);
    s->rows = NULL;
    s->settled = NULL;
    return 0;
}

static void push_metatable(lua_State *L);

static l_schedule *new_sched(lua_State *L) {
    l_schedule *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    s->levels_ref = s->n_steps_ref = LUA_NOREF;
    s->L = L;
    push_metatable(L); /* made here too: l_to_schedule may run before hdlm is required */
    lua_setmetatable(L, -2);
    return s;
}

/* Plugin form: {"name", key = value, ...}; the host validates the keys ("did you mean"). Whether
 * the instance trains in continuous time is its own fact (info), not guessed from options. */
static void new_plugin_sched(lua_State *L, int t, l_ctx *c) {
    (void)c;
    l_schedule *s = new_sched(L);
    s->inst = l_plugin_from_spec(L, t, HDLM_KIND_SCHEDULE, "hdlm.schedule", NULL);
    hyper_from_plugin(&s->h, s->inst->self, s->inst->ops, s->inst->entry->desc->name);
}

static const char *const lua_sched_keys[] = {"levels", "n_steps", "n_levels",   "growth", "block",
                                             "name",   "settled", "continuous", NULL};

/* Table form: checks every row before anything is allocated; returns the row length. */
static int64_t check_rows(lua_State *L, int lv, int32_t W, int64_t *n_rows) {
    const char *what = "hdlm.schedule";
    *n_rows = (int64_t)lua_rawlen(L, lv);
    if (*n_rows < 1)
        fail(L, "%s: key 'levels' must be a function or a non-empty table of level rows", what);
    int64_t len = -1;
    for (int64_t r = 1; r <= *n_rows; r++) {
        lua_rawgeti(L, lv, (lua_Integer)r);
        if (!lua_istable(L, -1))
            fail(L, "%s: levels[%lld] must be a table of levels, got %s", what, (long long)r,
                 luaL_typename(L, -1));
        int64_t n = (int64_t)lua_rawlen(L, -1);
        if (len < 0) len = n;
        if (n != len || n < 1)
            fail(L,
                 "%s: levels[%lld] has %lld levels, levels[1] has %lld (rows must be "
                 "non-empty and of one length)",
                 what, (long long)r, (long long)n, (long long)len);
        for (int64_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i);
            int isint = 0;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint || v < 0 || v > W)
                fail(L, "%s: levels[%lld][%lld] must be an integer in 0..%d (n_levels)", what,
                     (long long)r, (long long)i, (int)W);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    if (len > L_MAX_LEN) fail(L, "%s: rows longer than %d positions", what, L_MAX_LEN);
    return len;
}

static void new_lua_sched(lua_State *L, int t) {
    const char *what = "hdlm.schedule";
    l_check_keys(L, t, what, lua_sched_keys);
    if (lua_rawlen(L, t) > 0)
        fail(L, "%s: a schedule written in Lua takes no positional entries", what);
    const char *name = l_opt_string(L, t, what, "name", "lua_schedule");
    long long W = l_opt_integer(L, t, what, "n_levels", -1);
    if (W == -1)
        fail(L,
             "%s: key 'n_levels' (the worthless level W) is required for a schedule "
             "written in Lua",
             what);
    if (W < 1 || W > L_MAX_LEVELS)
        fail(L, "%s: key 'n_levels' must be in 1..%d, got %lld", what, L_MAX_LEVELS, W);
    const char *growth = l_opt_string(L, t, what, "growth", "tokens");
    uint32_t g = !strcmp(growth, "tokens")   ? HDLM_GROW_TOKENS
                 : !strcmp(growth, "blocks") ? HDLM_GROW_BLOCKS
                                             : 0;
    if (!g) fail(L, "%s: key 'growth' must be 'tokens' or 'blocks', got '%s'", what, growth);
    long long block = l_opt_integer(L, t, what, "block", -1);
    if (g == HDLM_GROW_BLOCKS && block == -1)
        fail(L, "%s: growth = 'blocks' needs key 'block' (positions settled at once)", what);
    if (g == HDLM_GROW_TOKENS && block == -1) block = 1;
    if (block < 1) fail(L, "%s: key 'block' must be >= 1, got %lld", what, block);
    int continuous = l_opt_bool(L, t, what, "continuous", 0);

    lua_getfield(L, t, "levels");
    int lv = lua_gettop(L);
    int is_fn = lua_isfunction(L, lv);
    if (!is_fn && !lua_istable(L, lv))
        fail(L,
             "%s: key 'levels' must be a function (step, L) -> levels, n_settled or a "
             "table of level rows, got %s",
             what, luaL_typename(L, lv));
    int64_t n_rows = 0, row_len = 0;
    if (!is_fn) row_len = check_rows(L, lv, (int32_t)W, &n_rows);
    lua_getfield(L, t, "n_steps");
    int ns = lua_gettop(L);
    if (is_fn && lua_isnil(L, ns))
        fail(L,
             "%s: key 'n_steps' (a function (L) -> steps, or an integer) is required "
             "with a levels function",
             what);
    if (!lua_isnil(L, ns) && !lua_isfunction(L, ns)) {
        long long n = l_opt_integer(L, t, what, "n_steps", 0);
        if (n < 0) fail(L, "%s: key 'n_steps' must be >= 0, got %lld", what, n);
        if (!is_fn && n != n_rows)
            fail(L, "%s: key 'n_steps' = %lld but 'levels' has %lld rows", what, n,
                 (long long)n_rows);
    }
    if (!is_fn && lua_isfunction(L, ns))
        fail(L,
             "%s: with a table of levels, n_steps is the number of rows; drop the "
             "'n_steps' function",
             what);
    lua_getfield(L, t, "settled");
    int st = lua_gettop(L);
    if (!lua_isnil(L, st)) {
        if (is_fn)
            fail(L,
                 "%s: key 'settled' goes with a table of levels; a levels function "
                 "returns n_settled itself",
                 what);
        if (!lua_istable(L, st) || (int64_t)lua_rawlen(L, st) != n_rows)
            fail(L,
                 "%s: key 'settled' must be a table of %lld settled counts (one per "
                 "row of 'levels')",
                 what, (long long)n_rows);
        for (int64_t r = 1; r <= n_rows; r++) {
            lua_rawgeti(L, st, (lua_Integer)r);
            int isint = 0;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint || v < 0 || v > row_len)
                fail(L, "%s: settled[%lld] must be an integer in 0..%lld", what, (long long)r,
                     (long long)row_len);
            lua_pop(L, 1);
        }
    }

    /* everything checked: build the userdata (its __gc frees what follows if a later step
     * raises) */
    l_schedule *s = new_sched(L);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->W = (int32_t)W;
    s->growth = g;
    s->block = block;
    if (is_fn) {
        lua_pushvalue(L, lv);
        s->levels_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        if (lua_isfunction(L, ns)) {
            lua_pushvalue(L, ns);
            s->n_steps_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        } else {
            s->n_steps_const = (int64_t)lua_tointeger(L, ns);
        }
    } else {
        s->n_steps_const = n_rows;
        s->row_len = row_len;
        s->rows = malloc((size_t)(n_rows * row_len) * sizeof *s->rows);
        if (!s->rows) fail(L, "%s: out of memory for %lld level rows", what, (long long)n_rows);
        for (int64_t r = 0; r < n_rows; r++) {
            lua_rawgeti(L, lv, (lua_Integer)(r + 1));
            for (int64_t i = 0; i < row_len; i++) {
                lua_rawgeti(L, -1, (lua_Integer)(i + 1));
                s->rows[r * row_len + i] = (int32_t)lua_tointeger(L, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        if (!lua_isnil(L, st)) {
            s->settled = malloc((size_t)n_rows * sizeof *s->settled);
            if (!s->settled) fail(L, "%s: out of memory", what);
            for (int64_t r = 0; r < n_rows; r++) {
                lua_rawgeti(L, st, (lua_Integer)(r + 1));
                s->settled[r] = (int64_t)lua_tointeger(L, -1);
                lua_pop(L, 1);
            }
        }
    }
    s->continuous = continuous;
    hyper_from_plugin(&s->h, s, &lua_sched_ops, s->name); /* flags from lua_sched_info */
    lua_replace(L, lv); /* leave the userdata where 'levels' was, drop the rest */
    lua_settop(L, lv);
}

/* Pushes a new Schedule made from the table at t. */
static void push_schedule(lua_State *L, int t, l_ctx *c) {
    t = lua_absindex(L, t);
    int type1 = lua_rawgeti(L, t, 1);
    lua_pop(L, 1);
    if (type1 == LUA_TSTRING) {
        new_plugin_sched(L, t, c);
        return;
    }
    lua_getfield(L, t, "levels");
    int has_levels = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (type1 != LUA_TNIL || !has_levels)
        fail(L, "hdlm.schedule: give a plugin name first ({\"block_annealing\", width = 4}) "
                "or levels = ... for a schedule written in Lua");
    new_lua_sched(L, t);
}

static int l_schedule_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    push_schedule(L, 1, L_CTX(L));
    return 1;
}

const hyper *l_to_schedule(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (luaL_testudata(L, idx, SCHEDULE_MT)) {
        lua_pushvalue(L, idx);
        return l_check_schedule(L, -1);
    }
    if (!lua_istable(L, idx))
        fail(L,
             "schedule must be a Schedule (hdlm.schedule{...}) or a table like "
             "{\"block_annealing\", width = 4}, got %s",
             luaL_typename(L, idx));
    lua_getfield(L, LUA_REGISTRYINDEX, "hdlm.ctx");
    l_ctx *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!c) fail(L, "schedule: the hdlm host context is missing");
    l_spec_normalize(L, idx); /* {name =, options =} as stored in runs.config */
    push_schedule(L, idx, c);
    return l_check_schedule(L, -1);
}

/* ---- methods ---- */

static int64_t check_len(lua_State *L, int arg, int64_t max) {
    lua_Integer len = luaL_checkinteger(L, arg);
    if (len < 0 || len > max)
        fail(L, "schedule: sequence length L must be in 0..%lld, got %lld", (long long)max,
             (long long)len);
    return (int64_t)len;
}

/* Levels of (step, len) into a scratch userdata pushed on the stack (freed by the GC). */
static int32_t *get_levels(lua_State *L, l_schedule *s, int64_t step, int64_t len,
                           int64_t *n_settled) {
    int32_t *level = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *level, 0);
    error e = {0};
    if (hyper_levels(&s->h, step, len, level, n_settled, &e) != HDLM_OK) l_raise(L, &e);
    return level;
}

static int m_n_steps(lua_State *L) {
    l_schedule *s = check_sched(L, 1);
    int64_t len = check_len(L, 2, L_MAX_LEN);
    int64_t n = hyper_n_steps(&s->h, len);
    if (n < 0) return fail(L, "schedule '%s': %s", s->name, s->err);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int m_levels(lua_State *L) {
    l_schedule *s = check_sched(L, 1);
    lua_Integer step = luaL_checkinteger(L, 2);
    int64_t len = check_len(L, 3, L_MAX_LEN), ns = 0;
    const int32_t *level = get_levels(L, s, (int64_t)step, len, &ns);
    lua_createtable(L, (int)len, 0);
    for (int64_t i = 0; i < len; i++) {
        lua_pushinteger(L, level[i]);
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    lua_pushinteger(L, (lua_Integer)ns);
    return 2;
}

static const char *state_name(uint8_t st) {
    return st == HDLM_SETTLED ? "settled" : st == HDLM_ACTIVE ? "active" : "worthless";
}

/* Levels -> (t, state) of every position, with ε_s from opts (at opt_idx, may be absent). */
static void get_times(lua_State *L, l_schedule *s, int64_t step, int64_t len, int opt_idx,
                      float **t, uint8_t **state) {
    static const char *const keys[] = {"eps", NULL};
    double eps = HYPER_SAMPLING_EPS;
    if (!lua_isnoneornil(L, opt_idx)) {
        luaL_checktype(L, opt_idx, LUA_TTABLE);
        l_check_keys(L, opt_idx, "schedule:times", keys);
        eps = l_opt_number(L, opt_idx, "schedule:times", "eps", 1e-4);
        /* a = 10 ε_s must stay below 1/2 for the active band [a, 1 − a] to exist */
        if (!(eps > 0 && eps < 0.05))
            fail(L, "schedule:times: key 'eps' must be in (0, 0.05), got %g", eps);
    }
    int64_t ns = 0;
    const int32_t *level = get_levels(L, s, step, len, &ns);
    size_t n = (size_t)(len ? len : 1);
    *t = lua_newuserdatauv(L, n * sizeof **t, 0);
    *state = lua_newuserdatauv(L, n, 0);
    hyper_times(level, ns, len, hyper_n_levels(&s->h), (float)eps, *t, *state);
}

static int m_times(lua_State *L) {
    l_schedule *s = check_sched(L, 1);
    lua_Integer step = luaL_checkinteger(L, 2);
    int64_t len = check_len(L, 3, L_MAX_LEN);
    float *t;
    uint8_t *state;
    get_times(L, s, (int64_t)step, len, 4, &t, &state);
    lua_createtable(L, (int)len, 0);
    lua_createtable(L, (int)len, 0);
    for (int64_t i = 0; i < len; i++) {
        lua_pushnumber(L, (double)t[i]); /* exactly the float32 value */
        lua_rawseti(L, -3, (lua_Integer)(i + 1));
        lua_pushstring(L, state_name(state[i]));
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    return 2;
}

static int m_mask(lua_State *L) {
    static const char *const keys[] = {"context", "block", "width", NULL};
    const char *what = "schedule:mask";
    l_schedule *s = check_sched(L, 1);
    lua_Integer step = luaL_checkinteger(L, 2);
    int64_t len = check_len(L, 3, L_MAX_MASK);
    const char *ctx = "block_causal", *blk = "full";
    int64_t gblock;
    hyper_growth(&s->h, &gblock);
    long long width = gblock;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        l_check_keys(L, 4, what, keys);
        ctx = l_opt_string(L, 4, what, "context", ctx);
        blk = l_opt_string(L, 4, what, "block", blk);
        width = l_opt_integer(L, 4, what, "width", width);
    }
    int context = mask_context_from_name(ctx), block_type = mask_block_from_name(blk);
    if (context < 0)
        return fail(L, "%s: key 'context' must be full, causal or block_causal, got '%s'", what,
                    ctx);
    if (block_type < 0)
        return fail(L, "%s: key 'block' must be full or causal, got '%s'", what, blk);
    if (width < 1) return fail(L, "%s: key 'width' must be >= 1, got %lld", what, width);
    if (width > len) width = len > 0 ? len : 1; /* one block covering everything */
    lua_pushnil(L);                             /* no eps option: states do not depend on it */
    float *t;
    uint8_t *state;
    get_times(L, s, (int64_t)step, len, lua_gettop(L), &t, &state);
    size_t n = (size_t)(len ? len : 1);
    attn_row *rows = lua_newuserdatauv(L, n * sizeof *rows, 0);
    char *line = lua_newuserdatauv(L, n, 0);
    mask_rows_from_states(rows, state, (int)len, context, (int)width, block_type);
    lua_createtable(L, (int)len, 0);
    for (int64_t i = 0; i < len; i++) {
        for (int64_t j = 0; j < len; j++)
            line[j] = mask_row_allows(&rows[i], (int)j) ? '1' : '0';
        lua_pushlstring(L, line, (size_t)len);
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    return 1;
}

static int sched_index(lua_State *L) {
    l_schedule *s = check_sched(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "name")) {
        lua_pushstring(L, s->h.name);
    } else if (!strcmp(k, "n_levels")) {
        lua_pushinteger(L, hyper_n_levels(&s->h));
    } else if (!strcmp(k, "growth") || !strcmp(k, "block")) {
        int64_t block;
        uint32_t g = hyper_growth(&s->h, &block);
        if (!strcmp(k, "block"))
            lua_pushinteger(L, (lua_Integer)block);
        else
            lua_pushstring(L, g == HDLM_GROW_BLOCKS ? "blocks" : "tokens");
    } else if (!strcmp(k, "continuous")) {
        lua_pushboolean(L, (s->h.flags & HDLM_INFO_CONTINUOUS) != 0);
    } else if (!strcmp(k, "source")) {
        lua_pushstring(L, s->inst ? "plugin" : "lua");
    } else if (!strcmp(k, "version")) {
        if (s->inst)
            lua_pushstring(L, s->inst->entry->desc->version);
        else
            lua_pushnil(L);
    } else if (!strcmp(k, "options")) { /* resolved plugin options as JSON, for provenance */
        char *json = s->inst ? plugin_opts_json(s->inst->opts) : NULL;
        if (json)
            lua_pushstring(L, json);
        else
            lua_pushnil(L);
        free(json);
    } else {
        luaL_getmetatable(L, SCHEDULE_MT);
        lua_getfield(L, -1, "methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

static int sched_tostring(lua_State *L) {
    l_schedule *s = check_sched(L, 1);
    lua_pushfstring(L, "Schedule(%s)", s->h.name);
    return 1;
}

static void push_metatable(lua_State *L) {
    static const luaL_Reg methods[] = {{"n_steps", m_n_steps},
                                       {"levels", m_levels},
                                       {"times", m_times},
                                       {"mask", m_mask},
                                       {NULL, NULL}};
    if (luaL_newmetatable(L, SCHEDULE_MT)) {
        lua_pushcfunction(L, sched_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, sched_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, sched_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "methods");
    }
}

void l_schedule_register(lua_State *L, int ctx_idx) {
    push_metatable(L);
    lua_pop(L, 1);
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_schedule_new, 1);
    lua_setfield(L, -2, "schedule");
}
