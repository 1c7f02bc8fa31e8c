/* Argument checking and JSON conversion shared by the Lua bindings. Every check raises a Lua
 * error naming the key, the expected type and what was found, before any C resource is taken. */
#include "base/json.h"
#include "base/text.h"
#include "l_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *l_closest(const char *key, const char *const *cands) {
    size_t n = 0;
    while (cands[n])
        n++;
    return text_closest(key, cands, n);
}

void l_check_keys(lua_State *L, int idx, const char *what, const char *const *allowed) {
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            continue; /* positional entries are checked by callers */
        const char *k = lua_tostring(L, -1);
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, k)) ok = 1;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *const *a = allowed; *a; a++) {
                if (a != allowed) luaL_addstring(&b, ", ");
                luaL_addstring(&b, *a);
            }
            luaL_pushresult(&b);
            const char *near = l_closest(k, allowed);
            if (near)
                luaL_error(L, "%s: unknown key '%s' (did you mean '%s'?); allowed: %s", what, k,
                           near, lua_tostring(L, -1));
            else
                luaL_error(L, "%s: unknown key '%s'; allowed: %s", what, k, lua_tostring(L, -1));
        }
    }
}

static int field_type_error(lua_State *L, const char *what, const char *key, const char *want,
                            int idx) {
    return luaL_error(L, "%s: key '%s' must be %s, got %s", what, key, want, luaL_typename(L, idx));
}

const char *l_opt_string(lua_State *L, int idx, const char *what, const char *key,
                         const char *def) {
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TSTRING) field_type_error(L, what, key, "a string", -1);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the table still references the string, so the pointer stays valid */
    return s;
}

double l_opt_number(lua_State *L, int idx, const char *what, const char *key, double def) {
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TNUMBER) field_type_error(L, what, key, "a number", -1);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!isfinite(v)) luaL_error(L, "%s: key '%s' must be finite, got %f", what, key, v);
    return v;
}

long long l_opt_integer(lua_State *L, int idx, const char *what, const char *key, long long def) {
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    int isint = 0;
    long long v = (long long)lua_tointegerx(L, -1, &isint);
    if (!isint) {
        if (lua_type(L, -1) == LUA_TNUMBER)
            luaL_error(L, "%s: key '%s' must be an integer, got %s", what, key,
                       lua_tostring(L, -1));
        field_type_error(L, what, key, "an integer", -1);
    }
    lua_pop(L, 1);
    return v;
}

int l_opt_bool(lua_State *L, int idx, const char *what, const char *key, int def) {
    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TBOOLEAN) field_type_error(L, what, key, "a boolean", -1);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

int l_raise(lua_State *L, const error *e) {
    return luaL_error(L, "%s", e->msg);
}

/* ---- Lua -> JSON ---- */

static int cmp_keys(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void to_json(lua_State *L, int idx, json_buf *jb, int depth);

/* A table that is not an array: string keys sorted (numbers become strings) for a deterministic
 * config text. */
static void to_json_object(lua_State *L, int idx, json_buf *jb, int depth, lua_Integer count) {
    const char **keys = lua_newuserdatauv(L, (size_t)(count ? count : 1) * sizeof *keys, 0);
    int kidx = lua_gettop(L);
    lua_newtable(L); /* keeps converted key strings alive */
    int anchor = lua_gettop(L);
    lua_Integer k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        const char *ks = luaL_tolstring(L, -1, NULL);
        lua_rawseti(L, anchor, k + 1);
        lua_pop(L, 1);
        lua_rawgeti(L, anchor, k + 1);
        keys[k++] = lua_tostring(L, -1);
        lua_pop(L, 1);
        (void)ks;
    }
    qsort(keys, (size_t)k, sizeof *keys, cmp_keys);
    json_buf_raw(jb, "{");
    for (lua_Integer i = 0; i < k; i++) {
        if (i) json_buf_raw(jb, ",");
        json_buf_str(jb, keys[i]);
        json_buf_raw(jb, ":");
        lua_getfield(L, idx, keys[i]);
        if (lua_isnil(L, -1)) { /* numeric key stored as a number */
            lua_pop(L, 1);
            lua_pushstring(L, keys[i]);
            lua_Integer ik = lua_tointeger(L, -1);
            lua_pop(L, 1);
            lua_rawgeti(L, idx, ik);
        }
        to_json(L, -1, jb, depth + 1);
        lua_pop(L, 1);
    }
    json_buf_raw(jb, "}");
    lua_settop(L, kidx - 1);
}

static void to_json(lua_State *L, int idx, json_buf *jb, int depth) {
    idx = lua_absindex(L, idx);
    if (depth > 64) luaL_error(L, "json: nesting deeper than 64 (cycle?)");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        json_buf_raw(jb, "null");
        return;
    case LUA_TBOOLEAN:
        json_buf_raw(jb, lua_toboolean(L, idx) ? "true" : "false");
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, idx));
            json_buf_raw(jb, tmp);
        } else {
            json_buf_num(jb, lua_tonumber(L, idx));
        }
        return;
    case LUA_TSTRING:
        json_buf_str(jb, lua_tostring(L, idx));
        return;
    case LUA_TTABLE:
        break;
    case LUA_TUSERDATA: /* a Schedule, Noise or Corpus in a config: record what it prints as */
        json_buf_str(jb, luaL_tolstring(L, idx, NULL));
        lua_pop(L, 1);
        return;
    default:
        luaL_error(L, "json: cannot encode a %s", luaL_typename(L, idx));
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        lua_pop(L, 1);
    }
    if (n > 0 && count == n) {
        json_buf_raw(jb, "[");
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1) json_buf_raw(jb, ",");
            lua_rawgeti(L, idx, i);
            to_json(L, -1, jb, depth + 1);
            lua_pop(L, 1);
        }
        json_buf_raw(jb, "]");
        return;
    }
    to_json_object(L, idx, jb, depth, count);
}

static int jsonbuf_gc(lua_State *L) {
    json_buf_free((json_buf *)lua_touserdata(L, 1));
    return 0;
}

void l_push_json(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    /* the buffer lives in a userdata so that a Lua error raised while encoding cannot leak it */
    json_buf *jb = lua_newuserdatauv(L, sizeof *jb, 0);
    memset(jb, 0, sizeof *jb);
    if (luaL_newmetatable(L, "hdlm.JsonBuf")) {
        lua_pushcfunction(L, jsonbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    to_json(L, idx, jb, 0);
    lua_pushlstring(L, jb->data ? jb->data : "", jb->len);
    lua_remove(L, -2);
}

void l_spec_normalize(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx)) return;
    lua_rawgeti(L, idx, 1);
    lua_getfield(L, idx, "name");
    lua_getfield(L, idx, "options");
    int stored = lua_isnil(L, -3) && lua_type(L, -2) == LUA_TSTRING &&
                 (lua_isnil(L, -1) || lua_istable(L, -1));
    lua_pop(L, 3);
    if (!stored) return;
    /* only these keys: a Lua schedule definition also has `name`, with levels and n_levels */
    static const char *const keys[] = {"name", "options", "version", "sha256", NULL};
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int known = 0;
        for (const char *const *k = keys; *k && lua_type(L, -1) == LUA_TSTRING; k++)
            known |= !strcmp(*k, lua_tostring(L, -1));
        if (!known) {
            lua_pop(L, 1);
            return;
        }
    }
    lua_createtable(L, 1, 4);
    lua_getfield(L, idx, "name");
    lua_rawseti(L, -2, 1);
    lua_getfield(L, idx, "options");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -5);
        }
    }
    lua_pop(L, 1);
    lua_replace(L, idx);
}

/* "What is wrong with the spec table at t", or "" when nothing is: the one wording of every
 * binding. kname names the kind ("noise"). */
static void spec_problem(lua_State *L, int t, const char *what, const char *kname, char *bad,
                         size_t cap) {
    lua_rawgeti(L, t, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
        snprintf(bad, cap,
                 "%s: the first entry must be the %s plugin's name (a string), got %s "
                 "({\"name\", key = value, ...})",
                 what, kname, luaL_typename(L, -1));
    lua_pop(L, 1);
    lua_pushnil(L);
    while (!bad[0] && lua_next(L, t)) {
        int kt = lua_type(L, -2), vt = lua_type(L, -1);
        if (kt == LUA_TNUMBER) {
            if (!(lua_isinteger(L, -2) && lua_tointeger(L, -2) == 1))
                snprintf(bad, cap,
                         "%s: unexpected entry [%s]; only the plugin name may be positional, "
                         "options are written key = value",
                         what, lua_isinteger(L, -2) ? lua_tostring(L, -2) : "non-integer");
        } else if (kt != LUA_TSTRING) {
            snprintf(bad, cap, "%s: option keys must be strings, got a %s key", what,
                     lua_typename(L, kt));
        } else if (vt != LUA_TNUMBER && vt != LUA_TBOOLEAN && vt != LUA_TSTRING) {
            snprintf(bad, cap, "%s: option '%s' must be a number, boolean or string, got %s", what,
                     lua_tostring(L, -2), lua_typename(L, vt));
        }
        lua_pop(L, 1);
        if (bad[0]) lua_pop(L, 1); /* the key lua_next left */
    }
}

plugin_opts *l_spec_to_opts(lua_State *L, int t, uint32_t kind, const char *what, const char **name,
                            plugin_create_args *args) {
    t = lua_absindex(L, t);
    if (!lua_istable(L, t))
        luaL_error(L, "%s: expected a table {\"name\", key = value, ...}, got %s", what,
                   luaL_typename(L, t));
    l_spec_normalize(L, t); /* {name =, options =} as stored in runs.config */
    char bad[400] = "";
    spec_problem(L, t, what, plugin_kind_name(kind), bad, sizeof bad);
    if (bad[0]) luaL_error(L, "%s", bad);
    /* noise: the number of real tokens comes from the caller (the corpus) or the spec's "vocab";
     * it is a creation argument, not an option of the plugin */
    if (kind == HDLM_KIND_NOISE && args && args->vocab <= 0) {
        lua_getfield(L, t, "vocab");
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 2 && lua_tointeger(L, -1) <= (1 << 24))
            args->vocab = (int32_t)lua_tointeger(L, -1);
        else if (!lua_isnil(L, -1))
            luaL_error(L,
                       "%s: option 'vocab' (number of real tokens) must be an integer in "
                       "2..16777216, got %s",
                       what, luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
    }
    lua_rawgeti(L, t, 1);
    *name = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the table */
    /* all checks passed: nothing below raises while the options are ours */
    plugin_opts *o = plugin_opts_new();
    if (!o) luaL_error(L, "%s: out of memory", what);
    int rc = HDLM_OK;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING && rc == HDLM_OK) {
            const char *k = lua_tostring(L, -2);
            int vt = lua_type(L, -1);
            if (kind == HDLM_KIND_NOISE && !strcmp(k, "vocab"))
                ; /* see above */
            else if (vt == LUA_TNUMBER)
                rc = plugin_opts_set_number(o, k, lua_tonumber(L, -1));
            else if (vt == LUA_TBOOLEAN)
                rc = plugin_opts_set_bool(o, k, lua_toboolean(L, -1));
            else
                rc = plugin_opts_set_string(o, k, lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    if (rc != HDLM_OK) {
        plugin_opts_free(o);
        luaL_error(L, "%s: out of memory", what);
    }
    return o;
}

plugin_instance *l_plugin_from_spec(lua_State *L, int t, uint32_t kind, const char *what,
                                    const plugin_create_args *args) {
    lua_getfield(L, LUA_REGISTRYINDEX, "hdlm.ctx");
    l_ctx *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!c) luaL_error(L, "%s: no hdlm context", what);
    plugin_create_args a = {.vocab = 0, .n_extra = -1, .mask_id = -1};
    if (args) a = *args;
    const char *name;
    plugin_opts *o = l_spec_to_opts(L, t, kind, what, &name, &a);
    plugin_instance *inst = NULL;
    error e = {0};
    if (plugin_instance_create(l_plugins(L, c), kind, name, o, &a, &inst, &e) != HDLM_OK)
        luaL_error(L, "%s: %s", what, e.msg); /* the instance took the options, also on failure */
    return inst;
}

/* ---- JSON -> Lua ---- */

static void push_json_value(lua_State *L, const json_value *v) {
    luaL_checkstack(L, 4, "json: nesting too deep");
    switch (json_type(v)) {
    case JSON_BOOL:
        lua_pushboolean(L, json_bool(v));
        return;
    case JSON_NUMBER:
        if (json_is_int(v))
            lua_pushinteger(L, (lua_Integer)json_int(v));
        else
            lua_pushnumber(L, json_number(v));
        return;
    case JSON_STRING:
        lua_pushlstring(L, json_string(v), json_string_len(v));
        return;
    case JSON_ARRAY:
        lua_createtable(L, (int)json_len(v), 0);
        for (size_t i = 0; i < json_len(v); i++) {
            push_json_value(L, json_at(v, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return;
    case JSON_OBJECT:
        lua_createtable(L, 0, (int)json_len(v));
        for (size_t i = 0; i < json_len(v); i++) {
            push_json_value(L, json_value_at(v, i));
            lua_setfield(L, -2, json_key_at(v, i));
        }
        return;
    default:
        lua_pushnil(L);
        return; /* null */
    }
}

typedef struct json_holder {
    json_value *v;
} json_holder;

static int json_holder_gc(lua_State *L) {
    json_holder *h = lua_touserdata(L, 1);
    json_free(h->v);
    h->v = NULL;
    return 0;
}

int l_json_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    json_holder *h = lua_newuserdatauv(L, sizeof *h, 0); /* frees the tree if pushing raises */
    h->v = NULL;
    if (luaL_newmetatable(L, "hdlm.JsonTree")) {
        lua_pushcfunction(L, json_holder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    error e = {0};
    if (json_parse(s, n, &h->v, &e) != HDLM_OK) return l_raise(L, &e);
    push_json_value(L, h->v);
    json_free(h->v);
    h->v = NULL;
    return 1;
}

int l_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    l_push_json(L, 1);
    return 1;
}
