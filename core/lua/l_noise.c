/* Lua bindings of noise plugins, for inspecting and testing a noise process from a script:
 *   hdlm.noise{"epsilon_hybrid", epsilon = 0.01, vocab = 5} -> Noise
 *   noise:marginal(x0, t)  noise:loss{...}  noise:reverse{...}  noise:bound{...}
 *   noise:corrupt{...}  noise:limit{...}  noise:conditioning(t)
 *   fields: name, version, vocab, n_extra, flags = {score =, conditioned =}
 * Every call works on one sequence (B = 1); token ids are 0-based as everywhere in hdlm. The
 * trainer does not go through these methods: it takes an instance from l_to_noise and calls the
 * plugin in C. */
#include "base/rng.h"
#include "l_internal.h"

#include <stdlib.h>
#include <string.h>

#define NOISE_MT "hdlm.Noise"

typedef struct l_noise {
    plugin_instance *inst; /* NULL until made (and after __gc) */
    const hdlm_noise_ops *ops;
    int32_t V, Vp;
} l_noise;

/* ---- making instances -------------------------------------------------------------------- */

/* Makes an instance from the spec table at idx; vocab > 0 (the corpus') replaces the spec's. */
static plugin_instance *spec_instance(lua_State *L, int idx, int vocab, const char *what) {
    plugin_create_args a = {.vocab = vocab, .n_extra = -1, .mask_id = -1};
    return l_plugin_from_spec(L, idx, HDLM_KIND_NOISE, what, &a);
}

static l_noise *check_noise(lua_State *L, int idx) {
    l_noise *u = luaL_checkudata(L, idx, NOISE_MT);
    if (!u->inst) luaL_error(L, "noise: the object was already released");
    return u;
}

plugin_instance *l_to_noise(lua_State *L, int idx, int vocab) {
    idx = lua_absindex(L, idx);
    /* called from bindings whose upvalues we do not know: the ctx is also in the registry */
    lua_getfield(L, LUA_REGISTRYINDEX, "hdlm.ctx");
    l_ctx *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!c) {
        luaL_error(L, "noise: no hdlm context");
        return NULL;
    }
    if (luaL_testudata(L, idx, NOISE_MT)) {
        check_noise(L, idx);
        lua_getiuservalue(L, idx, 1); /* the spec it was made from; the vocab is replaced */
        plugin_instance *inst = spec_instance(L, lua_gettop(L), vocab, "noise");
        lua_pop(L, 1);
        return inst;
    }
    if (!lua_istable(L, idx)) {
        luaL_error(L,
                   "noise: expected a Noise (hdlm.noise{...}) or a table {\"name\", options...}, "
                   "got %s",
                   luaL_typename(L, idx));
        return NULL;
    }
    l_spec_normalize(L, idx); /* {name =, options =} as stored in runs.config */
    lua_getfield(L, idx, "vocab");
    if (!lua_isnil(L, -1) && vocab > 0 &&
        (!lua_isnumber(L, -1) || lua_tonumber(L, -1) != (lua_Number)vocab))
        luaL_error(L, "noise: the spec says vocab = %s but the data has %d tokens",
                   luaL_tolstring(L, -1, NULL), vocab);
    lua_pop(L, 1);
    return spec_instance(L, idx, vocab, "noise");
}

/* hdlm.noise{"name", vocab = V, options...} -> Noise */
static int l_noise_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    l_noise *u = lua_newuserdatauv(L, sizeof *u, 1);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, NOISE_MT);
    int ud = lua_gettop(L);
    /* a shallow copy of the spec: later edits of the caller's table do not change this noise */
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_setiuservalue(L, ud, 1);
    lua_getiuservalue(L, ud, 1);
    u->inst = spec_instance(L, lua_gettop(L), 0, "hdlm.noise");
    lua_pop(L, 1);
    u->ops = u->inst->ops;
    u->V = u->inst->vocab;
    u->Vp = u->V + u->inst->info.n_extra;
    lua_settop(L, ud);
    return 1;
}

static int noise_gc(lua_State *L) {
    l_noise *u = luaL_checkudata(L, 1, NOISE_MT);
    plugin_instance_destroy(u->inst);
    u->inst = NULL;
    return 0;
}

static int noise_tostring(lua_State *L) {
    l_noise *u = luaL_checkudata(L, 1, NOISE_MT);
    if (!u->inst) {
        lua_pushstring(L, "hdlm.Noise (released)");
        return 1;
    }
    lua_pushfstring(L, "hdlm.Noise(%s, vocab=%d, Vp=%d)", u->inst->entry->desc->name, (int)u->V,
                    (int)u->Vp);
    return 1;
}

/* fields first, then the methods table (upvalue 1) */
static int noise_index(lua_State *L) {
    l_noise *u = check_noise(L, 1);
    const char *k = luaL_checkstring(L, 2);
    const hdlm_plugin *d = u->inst->entry->desc;
    if (!strcmp(k, "name"))
        lua_pushstring(L, d->name);
    else if (!strcmp(k, "version"))
        lua_pushstring(L, d->version);
    else if (!strcmp(k, "vocab"))
        lua_pushinteger(L, u->V);
    else if (!strcmp(k, "n_extra"))
        lua_pushinteger(L, u->Vp - u->V);
    else if (!strcmp(k, "flags")) {
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, (u->inst->info.flags & HDLM_INFO_SCORE) != 0);
        lua_setfield(L, -2, "score");
        lua_pushboolean(L, (u->inst->info.flags & HDLM_INFO_CONDITIONED) != 0);
        lua_setfield(L, -2, "conditioned");
    } else
        lua_getfield(L, lua_upvalueindex(1), k);
    return 1;
}

/* ---- reading argument tables (every buffer is a userdata left on the stack, so a Lua error
 * cannot leak it) ------------------------------------------------------------------------- */

static void *stack_buf(lua_State *L, size_t bytes) {
    void *p = lua_newuserdatauv(L, bytes ? bytes : 1, 0);
    memset(p, 0, bytes ? bytes : 1);
    return p;
}

/* t[key]: an array of token ids in lo..hi; n >= 0 fixes its length (named after `len_of`),
 * n < 0 takes any length >= 1 and stores it in *n_out. */
static int32_t *get_ids(lua_State *L, int t, const char *what, const char *key, int64_t n,
                        const char *len_of, int32_t lo, int32_t hi, int64_t *n_out) {
    lua_getfield(L, t, key);
    if (lua_isnil(L, -1))
        luaL_error(L, "%s: key '%s' is required (an array of token ids)", what, key);
    if (!lua_istable(L, -1))
        luaL_error(L, "%s: key '%s' must be an array of token ids, got %s", what, key,
                   luaL_typename(L, -1));
    int arr = lua_gettop(L);
    int64_t len = (int64_t)lua_rawlen(L, arr);
    if (n >= 0 && len != n)
        luaL_error(L, "%s: key '%s' must have %d entries (the length of %s), got %d", what, key,
                   (int)n, len_of, (int)len);
    if (n < 0 && len < 1) luaL_error(L, "%s: key '%s' must not be empty", what, key);
    int32_t *out = stack_buf(L, sizeof(int32_t) * (size_t)len);
    for (int64_t i = 0; i < len; i++) {
        lua_rawgeti(L, arr, i + 1);
        int ok = 0;
        lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &ok) : 0;
        if (!ok || v < lo || v > hi)
            luaL_error(L, "%s: %s[%d] must be an integer token id in %d..%d, got %s", what, key,
                       (int)(i + 1), lo, hi, luaL_tolstring(L, -1, NULL));
        out[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    lua_remove(L, arr);
    if (n_out) *n_out = len;
    return out;
}

/* t[key]: one number for every position, or an array of n numbers */
static float *get_times(lua_State *L, int t, const char *what, const char *key, int64_t n) {
    lua_getfield(L, t, key);
    int v = lua_gettop(L);
    float *out = NULL;
    if (lua_type(L, v) == LUA_TNUMBER) {
        out = stack_buf(L, sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            out[i] = (float)lua_tonumber(L, v);
    } else if (lua_istable(L, v)) {
        int64_t len = (int64_t)lua_rawlen(L, v);
        if (len != n)
            luaL_error(L, "%s: key '%s' must have %d entries (one per position), got %d", what, key,
                       (int)n, (int)len);
        out = stack_buf(L, sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            lua_rawgeti(L, v, i + 1);
            if (lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "%s: %s[%d] must be a number, got %s", what, key, (int)(i + 1),
                           luaL_typename(L, -1));
            out[i] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "%s: key '%s' must be a number or an array of %d numbers, got %s", what, key,
                   (int)n, luaL_typename(L, v));
    }
    lua_remove(L, v);
    return out;
}

/* t.states: "settled" / "active" / "worthless" per position; default all active */
static uint8_t *get_states(lua_State *L, int t, const char *what, int64_t n) {
    lua_getfield(L, t, "states");
    int v = lua_gettop(L);
    uint8_t *out = stack_buf(L, (size_t)n);
    if (lua_isnil(L, v)) {
        memset(out, HDLM_ACTIVE, (size_t)n);
    } else {
        if (!lua_istable(L, v))
            luaL_error(L, "%s: key 'states' must be an array of strings, got %s", what,
                       luaL_typename(L, v));
        if ((int64_t)lua_rawlen(L, v) != n)
            luaL_error(L, "%s: key 'states' must have %d entries (one per position), got %d", what,
                       (int)n, (int)lua_rawlen(L, v));
        for (int64_t i = 0; i < n; i++) {
            lua_rawgeti(L, v, i + 1);
            const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            if (!strcmp(s, "settled"))
                out[i] = HDLM_SETTLED;
            else if (!strcmp(s, "active"))
                out[i] = HDLM_ACTIVE;
            else if (!strcmp(s, "worthless"))
                out[i] = HDLM_WORTHLESS;
            else
                luaL_error(L, "%s: states[%d] must be settled, active or worthless, got %s", what,
                           (int)(i + 1), luaL_tolstring(L, -1, NULL));
            lua_pop(L, 1);
        }
    }
    lua_remove(L, v);
    return out;
}

/* t.logits: n rows of Vp numbers -> (n, Vp) */
static float *get_logits(lua_State *L, int t, const char *what, int64_t n, int32_t Vp) {
    lua_getfield(L, t, "logits");
    int v = lua_gettop(L);
    if (!lua_istable(L, v))
        luaL_error(L, "%s: key 'logits' must be an array of %d rows of %d numbers, got %s", what,
                   (int)n, (int)Vp, luaL_typename(L, v));
    if ((int64_t)lua_rawlen(L, v) != n)
        luaL_error(L, "%s: key 'logits' must have %d rows (one per position), got %d", what, (int)n,
                   (int)lua_rawlen(L, v));
    float *out = stack_buf(L, sizeof(float) * (size_t)(n * Vp));
    for (int64_t i = 0; i < n; i++) {
        lua_rawgeti(L, v, i + 1);
        if (!lua_istable(L, -1) || (int64_t)lua_rawlen(L, -1) != Vp)
            luaL_error(L, "%s: logits[%d] must be an array of %d numbers (V + n_extra), got %s",
                       what, (int)(i + 1), (int)Vp,
                       lua_istable(L, -1) ? lua_pushfstring(L, "%d entries", (int)lua_rawlen(L, -1))
                                          : luaL_typename(L, -1));
        for (int32_t k = 0; k < Vp; k++) {
            lua_rawgeti(L, -1, k + 1);
            if (lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "%s: logits[%d][%d] must be a number, got %s", what, (int)(i + 1),
                           (int)(k + 1), luaL_typename(L, -1));
            out[i * Vp + k] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_remove(L, v);
    return out;
}

static void push_ints(lua_State *L, const int32_t *x, int64_t n) {
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, x[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int op_failed(lua_State *L, const char *what, const l_noise *u, int rc, const char *err) {
    if (err[0]) return luaL_error(L, "%s: %s: %s", what, u->inst->entry->desc->name, err);
    return luaL_error(L, "%s: %s: failed with status %d and no message", what,
                      u->inst->entry->desc->name, rc);
}

static void need_op(lua_State *L, const l_noise *u, int present, const char *op) {
    if (!present)
        luaL_error(L, "noise:%s: noise plugin '%s' has no %s operation", op,
                   u->inst->entry->desc->name, op);
}

static hdlm_noise_batch batch_init(const l_noise *u, int64_t n) {
    hdlm_noise_batch b;
    memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    b.B = 1;
    b.L = n;
    b.V = u->V;
    b.Vp = u->Vp;
    b.block = n;
    b.annealed = 1;
    return b;
}

/* ---- methods ----------------------------------------------------------------------------- */

/* noise:marginal(x0, t) -> array of Vp probabilities q(x_t = y | x0) */
static int noise_marginal(lua_State *L) {
    l_noise *u = check_noise(L, 1);
    lua_Integer x0 = luaL_checkinteger(L, 2);
    double t = luaL_checknumber(L, 3);
    need_op(L, u, u->ops->marginal != NULL, "marginal");
    if (x0 < 0 || x0 >= u->Vp)
        return luaL_error(L, "noise:marginal: x0 must be a token id in 0..%d, got %d",
                          (int)u->Vp - 1, (int)x0);
    double *p = stack_buf(L, sizeof(double) * (size_t)u->Vp);
    char err[512] = "";
    int rc = u->ops->marginal(u->inst->self, (int32_t)x0, t, p, err, sizeof err);
    if (rc != HDLM_OK) return op_failed(L, "noise:marginal", u, rc, err);
    lua_createtable(L, u->Vp, 0);
    for (int32_t y = 0; y < u->Vp; y++) {
        lua_pushnumber(L, p[y]);
        lua_rawseti(L, -2, y + 1);
    }
    return 1;
}

static const char *const loss_keys[] = {"x0",     "xt",       "t",     "logits",
                                        "states", "annealed", "block", NULL};

/* noise:loss{x0=, xt=, t=, logits=, states=, annealed=true, block=} -> total, per-token losses,
 * dlogits (L rows of Vp numbers) */
static int noise_loss(lua_State *L) {
    const char *W = "noise:loss";
    l_noise *u = check_noise(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, loss_keys);
    need_op(L, u, u->ops->loss != NULL, "loss");
    int64_t n;
    const int32_t *x0 = get_ids(L, 2, W, "x0", -1, NULL, 0, u->V - 1, &n);
    int32_t *xt = get_ids(L, 2, W, "xt", n, "x0", 0, u->Vp - 1, NULL);
    const float *t = get_times(L, 2, W, "t", n);
    const uint8_t *st = get_states(L, 2, W, n);
    const float *lg = get_logits(L, 2, W, n, u->Vp);
    int annealed = l_opt_bool(L, 2, W, "annealed", 1);
    long long block = l_opt_integer(L, 2, W, "block", n);
    if (block < 1)
        return luaL_error(L, "%s: key 'block' must be >= 1, got %I", W, (lua_Integer)block);
    float *loss = stack_buf(L, sizeof(float) * (size_t)n);
    float *dl = stack_buf(L, sizeof(float) * (size_t)(n * u->Vp));
    hdlm_noise_batch b = batch_init(u, n);
    b.block = block;
    b.annealed = annealed;
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.state = st;
    b.logits = lg;
    b.loss = loss;
    b.dlogits = dl;
    char err[512] = "";
    int rc = u->ops->loss(u->inst->self, &b, err, sizeof err);
    if (rc != HDLM_OK) return op_failed(L, W, u, rc, err);
    lua_pushnumber(L, b.total);
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, loss[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_createtable(L, u->Vp, 0);
        for (int32_t k = 0; k < u->Vp; k++) {
            lua_pushnumber(L, dl[i * u->Vp + k]);
            lua_rawseti(L, -2, k + 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 3;
}

static const char *const reverse_keys[] = {"logits", "xt", "t", "s", "states", NULL};

/* noise:reverse{logits=, xt=, t=, s=, states=} -> L rows of Vp probabilities p(x_s = y | x_t).
 * Rows of positions that are not active are one-hot on x_t (they do not move). */
static int noise_reverse(lua_State *L) {
    const char *W = "noise:reverse";
    l_noise *u = check_noise(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, reverse_keys);
    need_op(L, u, u->ops->reverse != NULL, "reverse");
    int64_t n;
    int32_t *xt = get_ids(L, 2, W, "xt", -1, NULL, 0, u->Vp - 1, &n);
    const float *t = get_times(L, 2, W, "t", n);
    const float *s = get_times(L, 2, W, "s", n);
    const uint8_t *st = get_states(L, 2, W, n);
    const float *lg = get_logits(L, 2, W, n, u->Vp);
    double *probs = stack_buf(L, sizeof(double) * (size_t)(n * u->Vp));
    hdlm_noise_batch b = batch_init(u, n);
    b.xt = xt;
    b.t = t;
    b.s = s;
    b.state = st;
    b.logits = lg;
    b.probs = probs;
    char err[512] = "";
    int rc = u->ops->reverse(u->inst->self, &b, err, sizeof err);
    if (rc != HDLM_OK) return op_failed(L, W, u, rc, err);
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_createtable(L, u->Vp, 0);
        for (int32_t k = 0; k < u->Vp; k++) {
            double p = st[i] == HDLM_ACTIVE ? probs[i * u->Vp + k] : (double)(k == xt[i]);
            lua_pushnumber(L, p);
            lua_rawseti(L, -2, k + 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const char *const bound_keys[] = {"x0", "xt", "t", "s", "logits", "states", NULL};

/* noise:bound{x0=, xt=, t=, s=, logits=, states=} -> total, per-position terms (nats) */
static int noise_bound(lua_State *L) {
    const char *W = "noise:bound";
    l_noise *u = check_noise(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, bound_keys);
    need_op(L, u, u->ops->bound != NULL, "bound");
    int64_t n;
    const int32_t *x0 = get_ids(L, 2, W, "x0", -1, NULL, 0, u->V - 1, &n);
    int32_t *xt = get_ids(L, 2, W, "xt", n, "x0", 0, u->Vp - 1, NULL);
    const float *t = get_times(L, 2, W, "t", n);
    const float *s = get_times(L, 2, W, "s", n);
    const uint8_t *st = get_states(L, 2, W, n);
    const float *lg = get_logits(L, 2, W, n, u->Vp);
    double *bound = stack_buf(L, sizeof(double) * (size_t)n);
    hdlm_noise_batch b = batch_init(u, n);
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.s = s;
    b.state = st;
    b.logits = lg;
    b.bound = bound;
    char err[512] = "";
    int rc = u->ops->bound(u->inst->self, &b, err, sizeof err);
    if (rc != HDLM_OK) return op_failed(L, W, u, rc, err);
    double total = 0;
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        total += bound[i];
        lua_pushnumber(L, bound[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushnumber(L, total);
    lua_insert(L, -2);
    return 2;
}

static const char *const corrupt_keys[] = {"x0", "t", "states", "seed", "annealed", NULL};

/* noise:corrupt{x0=, t=, states=, seed=0, annealed=true} -> xt */
static int noise_corrupt(lua_State *L) {
    const char *W = "noise:corrupt";
    l_noise *u = check_noise(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, corrupt_keys);
    need_op(L, u, u->ops->corrupt != NULL, "corrupt");
    int64_t n;
    const int32_t *x0 = get_ids(L, 2, W, "x0", -1, NULL, 0, u->V - 1, &n);
    const float *t = get_times(L, 2, W, "t", n);
    const uint8_t *st = get_states(L, 2, W, n);
    long long seed = l_opt_integer(L, 2, W, "seed", 0);
    int annealed = l_opt_bool(L, 2, W, "annealed", 1);
    int32_t *xt = stack_buf(L, sizeof(int32_t) * (size_t)n);
    rng r;
    rng_init(&r, (uint64_t)seed);
    hdlm_noise_batch b = batch_init(u, n);
    b.annealed = annealed;
    b.x0 = x0;
    b.xt = xt;
    b.t = t;
    b.state = st;
    b.rng = &r;
    char err[512] = "";
    int rc = u->ops->corrupt(u->inst->self, &b, err, sizeof err);
    if (rc != HDLM_OK) return op_failed(L, W, u, rc, err);
    push_ints(L, xt, n);
    return 1;
}

static const char *const limit_keys[] = {"L", "seed", NULL};

/* noise:limit{L=, seed=0} -> L draws from the fully-noised distribution */
static int noise_limit(lua_State *L) {
    const char *W = "noise:limit";
    l_noise *u = check_noise(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, limit_keys);
    need_op(L, u, u->ops->limit != NULL, "limit");
    long long n = l_opt_integer(L, 2, W, "L", 0);
    if (n < 1 || n > (1 << 24))
        return luaL_error(L, "%s: key 'L' must be an integer in 1..16777216, got %I", W,
                          (lua_Integer)n);
    long long seed = l_opt_integer(L, 2, W, "seed", 0);
    int32_t *xt = stack_buf(L, sizeof(int32_t) * (size_t)n);
    rng r;
    rng_init(&r, (uint64_t)seed);
    hdlm_noise_batch b = batch_init(u, n);
    b.xt = xt;
    b.rng = &r;
    char err[512] = "";
    int rc = u->ops->limit(u->inst->self, &b, err, sizeof err);
    if (rc != HDLM_OK) return op_failed(L, W, u, rc, err);
    push_ints(L, xt, n);
    return 1;
}

/* noise:conditioning(t) -> σ(t), or nil when the process takes no conditioning */
static int noise_conditioning(lua_State *L) {
    l_noise *u = check_noise(L, 1);
    float t = (float)luaL_checknumber(L, 2), sigma = 0;
    if (!u->ops->conditioning) {
        lua_pushnil(L);
        return 1;
    }
    char err[512] = "";
    int rc = u->ops->conditioning(u->inst->self, 1, &t, &sigma, err, sizeof err);
    if (rc != HDLM_OK) return op_failed(L, "noise:conditioning", u, rc, err);
    lua_pushnumber(L, sigma);
    return 1;
}

void l_noise_register(lua_State *L, int ctx_idx) {
    static const luaL_Reg methods[] = {{"marginal", noise_marginal},         {"loss", noise_loss},
                                       {"reverse", noise_reverse},           {"bound", noise_bound},
                                       {"corrupt", noise_corrupt},           {"limit", noise_limit},
                                       {"conditioning", noise_conditioning}, {NULL, NULL}};
    if (luaL_newmetatable(L, NOISE_MT)) {
        lua_pushcfunction(L, noise_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, noise_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, methods);
        lua_pushcclosure(L, noise_index, 1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_noise_new, 1);
    lua_setfield(L, -2, "noise");
}
