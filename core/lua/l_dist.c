/* Lua bindings that rank 0 computes for everyone (data-parallel runs, dist.h). After db:train the
 * ranks of a job hold the same model and run the same script; bindings whose results live in the
 * store (run:sample returns sample ids that run:gen_eval reads back, run:eval records its rows)
 * cannot run on ranks whose store drops writes. So rank 0 runs them and sends the results (plain
 * Lua data: nil, booleans, numbers, binary strings, tables) to the others, which return them as
 * their own: a script runs unchanged, the work is done once, and every rank sees the same values.
 * Errors travel the same way, so every rank fails with rank 0's message. */
#include "dist/dist.h"
#include "l_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct wire {
    char *p;
    size_t len, cap;
    int failed; /* out of memory */
} wire;

static void put(wire *w, const void *src, size_t n) {
    if (w->failed) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        char *p = realloc(w->p, cap);
        if (!p) {
            w->failed = 1;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

enum { T_NIL = 0, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STRING, T_TABLE };

/* Appends the value at idx; NULL or the name of a type that cannot travel. */
static const char *encode(lua_State *L, int idx, wire *w, int depth) {
    idx = lua_absindex(L, idx);
    uint8_t tag;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        tag = T_NIL;
        put(w, &tag, 1);
        return NULL;
    case LUA_TBOOLEAN:
        tag = lua_toboolean(L, idx) ? T_TRUE : T_FALSE;
        put(w, &tag, 1);
        return NULL;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            tag = T_INT;
            put(w, &tag, 1);
            put(w, &i, sizeof i);
        } else {
            lua_Number d = lua_tonumber(L, idx); /* bit for bit, NaN and infinities included */
            tag = T_FLOAT;
            put(w, &tag, 1);
            put(w, &d, sizeof d);
        }
        return NULL;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        uint64_t n64 = n;
        tag = T_STRING;
        put(w, &tag, 1);
        put(w, &n64, sizeof n64);
        put(w, s, n);
        return NULL;
    }
    case LUA_TTABLE: {
        if (depth > 64) return "table nested deeper than 64 levels (a cycle?)";
        tag = T_TABLE;
        put(w, &tag, 1);
        uint64_t n = 0;
        size_t at = w->len;
        put(w, &n, sizeof n); /* patched below */
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            const char *bad = encode(L, -2, w, depth + 1);
            if (!bad) bad = encode(L, -1, w, depth + 1);
            if (bad) {
                lua_pop(L, 2);
                return bad;
            }
            lua_pop(L, 1);
            n++;
        }
        if (!w->failed) memcpy(w->p + at, &n, sizeof n);
        return NULL;
    }
    default:
        return luaL_typename(L, idx);
    }
}

typedef struct reader {
    const char *p;
    size_t len, at;
} reader;

static int get(reader *r, void *dst, size_t n) {
    if (r->len - r->at < n) return -1;
    memcpy(dst, r->p + r->at, n);
    r->at += n;
    return 0;
}

/* Pushes the next value; -1 on a malformed message (a bug: both sides are this file). */
static int decode(lua_State *L, reader *r) {
    uint8_t tag;
    if (get(r, &tag, 1)) return -1;
    luaL_checkstack(L, 3, "decoding rank 0's results");
    switch (tag) {
    case T_NIL:
        lua_pushnil(L);
        return 0;
    case T_FALSE:
    case T_TRUE:
        lua_pushboolean(L, tag == T_TRUE);
        return 0;
    case T_INT: {
        lua_Integer i;
        if (get(r, &i, sizeof i)) return -1;
        lua_pushinteger(L, i);
        return 0;
    }
    case T_FLOAT: {
        lua_Number d;
        if (get(r, &d, sizeof d)) return -1;
        lua_pushnumber(L, d);
        return 0;
    }
    case T_STRING: {
        uint64_t n;
        if (get(r, &n, sizeof n) || r->len - r->at < n) return -1;
        lua_pushlstring(L, r->p + r->at, (size_t)n);
        r->at += (size_t)n;
        return 0;
    }
    case T_TABLE: {
        uint64_t n;
        if (get(r, &n, sizeof n)) return -1;
        lua_createtable(L, 0, 0);
        for (uint64_t i = 0; i < n; i++) {
            if (decode(L, r) || decode(L, r)) return -1;
            lua_rawset(L, -3);
        }
        return 0;
    }
    default:
        return -1;
    }
}

int l_on_rank0(lua_State *L, lua_CFunction fn) {
    if (dist_size() < 2) return fn(L);
    int nargs = lua_gettop(L);
    wire w = {0};
    uint8_t ok = 1;
    if (dist_rank() == 0) {
        /* the binding keeps its upvalue (the host context) */
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushcclosure(L, fn, 1);
        lua_insert(L, 1);
        ok = lua_pcall(L, nargs, LUA_MULTRET, 0) == LUA_OK;
        int nres = lua_gettop(L);
        uint32_t n = ok ? (uint32_t)nres : 1;
        put(&w, &ok, 1);
        put(&w, &n, sizeof n);
        const char *bad = NULL;
        if (ok) {
            for (int i = 1; i <= nres && !bad; i++)
                bad = encode(L, i, &w, 0);
        } else { /* the message as a string; the error value itself stays for lua_error */
            luaL_tolstring(L, -1, NULL);
            encode(L, -1, &w, 0);
            lua_pop(L, 1);
        }
        if (bad) { /* results that cannot travel: every rank fails with this message */
            lua_pushfstring(L,
                            "a %s in the results of a binding that rank 0 computes for all "
                            "ranks cannot be sent to the others",
                            bad);
            ok = 0;
            w.len = 0;
            n = 1;
            put(&w, &ok, 1);
            put(&w, &n, sizeof n);
            encode(L, -1, &w, 0);
        }
    }
    uint64_t size = w.failed ? 0 : w.len;
    error e = {0};
    if (dist_broadcast(&size, sizeof size, 0, &e) != HDLM_OK) {
        free(w.p);
        return l_raise(L, &e);
    }
    if (size == 0) {
        free(w.p);
        return luaL_error(L, "rank 0 ran out of memory sending its results to the other ranks");
    }
    if (dist_rank() != 0 && !(w.p = malloc((size_t)size))) /* this rank fails: the job aborts */
        return luaL_error(L, "out of memory for %llu bytes of rank 0's results",
                          (unsigned long long)size);
    if (dist_broadcast(w.p, (size_t)size, 0, &e) != HDLM_OK) {
        free(w.p);
        return l_raise(L, &e);
    }
    if (dist_rank() == 0) { /* its own results (or error) are still on the stack */
        free(w.p);
        if (!ok) return lua_error(L);
        return lua_gettop(L);
    }
    reader r = {w.p, (size_t)size, 0};
    uint32_t n = 0;
    lua_settop(L, 0);
    int bad = get(&r, &ok, 1) || get(&r, &n, sizeof n);
    for (uint32_t i = 0; i < n && !bad; i++)
        bad = decode(L, &r) != 0;
    free(w.p);
    HDLM_ASSERT(!bad);
    if (!ok) return lua_error(L);
    return (int)n;
}
