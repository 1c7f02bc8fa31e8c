/* Lua host: owns the lua_State, preloads the `hdlm` module, runs a script under a traceback
 * handler, and on failure marks the runs the script left open as failed with the message
 * (interrupted when training was stopped by SIGINT/SIGTERM, see base/interrupt.h). */
#include "lua_host.h"

#include "base/interrupt.h"
#include "base/log.h"
#include "base/sha256.h"
#include "base/text.h"
#include "dist/dist.h"
#include "l_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

/* plugin_set_fatal_hook: the process is about to exit after a plugin crashed in an op that
 * cannot report it; the open runs end failed with the guard's message. */
static void fatal_runs_failed(void *ctx, const char *msg) {
    l_runs_end_all(ctx, "failed", msg);
}

static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int l_time(lua_State *L);
static int l_log(lua_State *L);
static int l_interrupted(lua_State *L);

/* Pushes the hdlm module table (called through package.preload). */
static int luaopen_hdlm(lua_State *L) {
    lua_newtable(L);
    int mod = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1)); /* ctx */
    int ctx_idx = lua_gettop(L);
    lua_pushvalue(L, mod);
    l_store_register(L, ctx_idx);
    l_data_register(L, ctx_idx);
    l_plugin_register(L, ctx_idx);
    l_model_register(L, ctx_idx);
    l_schedule_register(L, ctx_idx);
    l_noise_register(L, ctx_idx);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_time);
    lua_setfield(L, mod, "time");
    lua_pushcfunction(L, l_log);
    lua_setfield(L, mod, "log");
    lua_pushcfunction(L, l_interrupted);
    lua_setfield(L, mod, "interrupted");
    lua_pushcfunction(L, l_json_decode);
    lua_setfield(L, mod, "json_decode");
    lua_pushcfunction(L, l_json_encode);
    lua_setfield(L, mod, "json_encode");
    lua_pushstring(L, HDLM_VERSION);
    lua_setfield(L, mod, "version");
    lua_getfield(L, LUA_REGISTRYINDEX, "hdlm.args");
    lua_setfield(L, mod, "args");
    l_ctx *c = lua_touserdata(L, ctx_idx);
    lua_pushstring(L, c->db_path);
    lua_setfield(L, mod, "db_path");
    /* the folder of the running script file (nil for stdin and the built-in commands), for
     * scripts that find files next to themselves */
    lua_getfield(L, LUA_REGISTRYINDEX, "hdlm.script_dir");
    lua_setfield(L, mod, "script_dir");
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    lua_pushstring(L, exe); /* the running hdlm binary, for scripts that start sub-runs */
    lua_setfield(L, mod, "binary");
    lua_settop(L, mod);
    return 1;
}

#include "base/progress.h"

static int l_time(lua_State *L) {
    lua_pushnumber(L, progress_now());
    return 1;
}

/* hdlm.interrupted() -> "SIGINT"/"SIGTERM" once training was stopped by that signal, else nil:
 * a script catching db:train's error can tell a stop (leave, to resume later) from a failure. */
static int l_interrupted(lua_State *L) {
    int sig = interrupt_signal();
    if (sig)
        lua_pushstring(L, interrupt_name(sig));
    else
        lua_pushnil(L);
    return 1;
}

static int l_log(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 0;
}

/* hdlm.args is a proxy over the parsed values that records the keys the script looks up, so that
 * a misspelled key=value argument can be reported at the end (lua_host_opts.warn_unread).
 * Upvalues of the metamethods: 1 = the values, 2 = the set of keys read. */
static int args_index(lua_State *L) {
    lua_settop(L, 2);
    if (lua_type(L, 2) == LUA_TSTRING) { /* arguments are string keys (nil/NaN cannot be set) */
        lua_pushvalue(L, 2);
        lua_pushboolean(L, 1);
        lua_rawset(L, lua_upvalueindex(2));
    }
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

static int args_newindex(lua_State *L) {
    lua_settop(L, 3);
    lua_rawset(L, lua_upvalueindex(1));
    return 0;
}

static int args_next(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1)) return 2;
    lua_pushnil(L);
    return 1;
}

/* pairs(hdlm.args): iterating reads every key */
static int args_pairs(lua_State *L) {
    lua_pushnil(L);
    while (lua_next(L, lua_upvalueindex(1))) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, lua_upvalueindex(2));
    }
    lua_pushcfunction(L, args_next);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    return 3;
}

static int args_len(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
    return 1;
}

/* "key=value" -> args[key] = number when it parses as one, true/false, else the string. Leaves
 * in the registry: hdlm.args (the proxy), hdlm.args.given (the keys in command-line order) and
 * hdlm.args.read (the keys looked up). */
static int push_args(lua_State *L, int n, char *const *args, error *e) {
    lua_newtable(L);
    int vals = lua_gettop(L);
    lua_newtable(L);
    int given = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(args[i], '=');
        if (!eq || eq == args[i]) {
            lua_settop(L, vals - 1);
            return error_set(e, HDLM_EINVAL, "script argument '%s' must look like key=value",
                             args[i]);
        }
        lua_pushlstring(L, args[i], (size_t)(eq - args[i]));
        lua_pushvalue(L, -1);
        lua_rawseti(L, given, i + 1);
        const char *v = eq + 1;
        if (!strcmp(v, "true"))
            lua_pushboolean(L, 1);
        else if (!strcmp(v, "false"))
            lua_pushboolean(L, 0);
        else if (!lua_stringtonumber(L, v))
            lua_pushstring(L, v);
        lua_settable(L, vals);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "hdlm.args.given");
    lua_newtable(L);
    int read = lua_gettop(L);
    lua_newtable(L); /* the proxy */
    lua_createtable(L, 0, 4);
    static const struct {
        const char *name;
        lua_CFunction fn;
    } mm[] = {{"__index", args_index},
              {"__newindex", args_newindex},
              {"__pairs", args_pairs},
              {"__len", args_len}};
    for (size_t i = 0; i < sizeof mm / sizeof *mm; i++) {
        lua_pushvalue(L, vals);
        lua_pushvalue(L, read);
        lua_pushcclosure(L, mm[i].fn, 2);
        lua_setfield(L, -2, mm[i].name);
    }
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "hdlm.args");
    lua_setfield(L, LUA_REGISTRYINDEX, "hdlm.args.read");
    lua_pop(L, 1); /* the values: the proxy's metamethods hold them */
    return HDLM_OK;
}

/* "warning: argument 'stpes' was never read by x.lua (did you mean 'steps'?)" for every
 * key=value argument the script did not look up; the suggestions are keys it looked up in vain. */
static void warn_unread_args(lua_State *L, const char *script) {
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "hdlm.args.given");
    int given = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "hdlm.args.read");
    int read = lua_gettop(L);
    if (!lua_istable(L, given) || !lua_istable(L, read)) {
        lua_settop(L, top);
        return;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, given);
    /* candidates: keys read that were not given (the strings stay anchored in `read`) */
    size_t n_read = 0;
    lua_pushnil(L);
    while (lua_next(L, read)) {
        lua_pop(L, 1);
        n_read++;
    }
    const char **cands = calloc(n_read + 1, sizeof *cands);
    size_t nc = 0;
    lua_newtable(L);
    int given_set = lua_gettop(L);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, given, i);
        lua_pushboolean(L, 1);
        lua_rawset(L, given_set);
    }
    lua_pushnil(L);
    while (cands && lua_next(L, read)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) continue;
        lua_pushvalue(L, -1);
        int was_given = lua_rawget(L, given_set) != LUA_TNIL;
        lua_pop(L, 1);
        if (!was_given && nc < n_read) cands[nc++] = lua_tostring(L, -1);
    }
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, given, i);
        const char *key = lua_tostring(L, -1);
        lua_pushvalue(L, -1);
        int seen = lua_rawget(L, read) != LUA_TNIL;
        lua_pop(L, 1);
        if (!seen) {
            const char *near = cands ? text_closest(key, cands, nc) : NULL;
            if (near)
                log_msg(HDLM_LOG_WARN, "argument '%s' was never read by %s (did you mean '%s'?)",
                        key, script, near);
            else
                log_msg(HDLM_LOG_WARN, "argument '%s' was never read by %s", key, script);
            lua_pushvalue(L, -1); /* once per key */
            lua_pushboolean(L, 1);
            lua_rawset(L, read);
        }
        lua_pop(L, 1);
    }
    free(cands);
    lua_settop(L, top);
}

/* The first line of a Lua error without its "chunk:LINE: " source locations. */
static void plain_message(char *msg) {
    msg[strcspn(msg, "\n")] = '\0';
    for (int again = 1; again;) {
        again = 0;
        for (char *q = msg; *q; q++) {
            if (q[0] == ':' && q[1] == ' ') break; /* a location has no ": " before its line */
            if (q[0] != ':' || !isdigit((unsigned char)q[1])) continue;
            char *d = q + 1;
            while (isdigit((unsigned char)*d))
                d++;
            if (d[0] == ':' && d[1] == ' ') {
                memmove(msg, d + 2, strlen(d + 2) + 1);
                again = 1;
            }
            break;
        }
    }
}

/* The whole file in a malloc'd buffer (NUL-terminated); NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 14, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = !buf || ferror(f);
    int err = errno;
    fclose(f);
    if (bad) {
        free(buf);
        errno = err ? err : ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Loads the script from the bytes that are hashed and stored with its runs (reading the file
 * twice could record one version and run another). Skips a UTF-8 BOM and a first line starting
 * with '#' (a shebang) as luaL_loadfile does, keeping the line numbers. */
static int load_script(lua_State *L, l_ctx *c, const char *path) {
    size_t len = 0;
    char *buf = read_file(path, &len);
    if (!buf) {
        lua_pushfstring(L, "cannot open %s: %s", path, strerror(errno));
        return LUA_ERRFILE;
    }
    const char *p = buf;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    if (*p == '#')
        while (*p && *p != '\n')
            p++;
    sha256_hex(buf, len, c->script_sha256);
    c->script_text = buf;
    c->script_bytes = len;
    lua_pushfstring(L, "@%s", path);
    int status = luaL_loadbufferx(L, p, len - (size_t)(p - buf), lua_tostring(L, -1), NULL);
    lua_remove(L, -2); /* the chunk name, below the chunk or the error message */
    return status;
}

/* Where the script lives (runs record it by absolute path, so that it can be found from another
 * directory; its folder goes first on package.path) and, for stdin, its text and hash. Sets
 * c->script and fills script_dir ("" for a chunk); abs holds the path c->script points to. */
static void set_script_identity(lua_State *L, l_ctx *c, const lua_host_opts *o, char abs[PATH_MAX],
                                char script_dir[PATH_MAX]) {
    script_dir[0] = '\0';
    if (!o->chunk && realpath(o->script, abs)) {
        c->script = abs;
        snprintf(script_dir, PATH_MAX, "%s", abs);
        char *slash = strrchr(script_dir, '/');
        if (slash) slash[slash == script_dir ? 1 : 0] = '\0'; /* "/x.lua" keeps "/" */
    }
    if (script_dir[0])
        lua_pushstring(L, script_dir);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "hdlm.script_dir");
    if (o->chunk && !strcmp(o->script, "=stdin")) { /* its text and hash are recorded too */
        size_t len = strlen(o->chunk);
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, o->chunk, len + 1);
            sha256_hex(copy, len, c->script_sha256);
            c->script_text = copy;
            c->script_bytes = len;
        }
    }
}

/* package.preload.hdlm (and hdlm_run) with the ctx as upvalue, and the script's own folder first
 * on the path (modules next to the script, like the script itself; nothing is looked up in a
 * source tree) */
static void open_modules(lua_State *L, l_ctx *c, const char *script_dir) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushlightuserdata(L, c);
    lua_pushcclosure(L, luaopen_hdlm, 1);
    lua_setfield(L, -2, "hdlm");
    lua_pushlightuserdata(L, c);
    lua_pushcclosure(L, l_open_hdlm_run, 1);
    lua_setfield(L, -2, "hdlm_run");
    lua_pop(L, 1);
    if (script_dir[0]) {
        lua_pushfstring(L, "%s/?.lua;", script_dir);
        lua_getfield(L, -2, "path");
        lua_concat(L, 2);
        lua_setfield(L, -2, "path");
    }
    lua_pop(L, 1);
}

/* Runs the script and ends its open runs as done, failed or interrupted. */
static int run_script(lua_State *L, l_ctx *c, const lua_host_opts *o, const char *shown, error *e) {
    /* a plugin crash that ends the process still marks this script's open runs failed */
    plugin_set_fatal_hook(fatal_runs_failed, c);
    lua_pushcfunction(L, msghandler);
    int status = o->chunk ? luaL_loadbuffer(L, o->chunk, strlen(o->chunk), o->script)
                          : load_script(L, c, o->script);
    if (status == LUA_OK) status = lua_pcall(L, 0, 0, -2);
    int rc = HDLM_OK;
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        error_set(e, HDLM_ELUA, "%s", msg ? msg : "(no message)");
        /* runs keep the first line only: the traceback stays on the terminal */
        char first[1024];
        snprintf(first, sizeof first, "%s", e->msg);
        first[strcspn(first, "\n")] = '\0';
        /* stopped by SIGINT/SIGTERM during training: the open runs were interrupted */
        l_runs_end_all(c, interrupt_signal() ? "interrupted" : "failed", first);
        if (o->plain_errors && log_get_level() > HDLM_LOG_DEBUG) plain_message(e->msg);
        rc = HDLM_ELUA;
    } else if (interrupt_signal()) { /* the script caught the stop: still not 'done' */
        l_runs_end_all(c, "interrupted", "interrupted by a signal during training");
        rc = error_set(e, HDLM_ESTATE, "interrupted by %s during training",
                       interrupt_name(interrupt_signal()));
    } else {
        l_runs_end_all(c, "done", NULL);
        if (o->warn_unread && dist_rank() == 0) warn_unread_args(L, shown);
    }
    plugin_set_fatal_hook(NULL, NULL);
    return rc;
}

int lua_host_run(const lua_host_opts *o, error *e) {
    lua_State *L = luaL_newstate();
    if (!L) return error_set(e, HDLM_ENOMEM, "cannot create a Lua state");
    luaL_openlibs(L);
    l_ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->db_path = o->db_path ? o->db_path : "runs.db";
    const char *shown = o->script[0] == '=' ? o->script + 1 : o->script; /* "=stdin": stdin */
    c->script = shown;
    char abs[PATH_MAX], script_dir[PATH_MAX];
    set_script_identity(L, c, o, abs, script_dir);
    lua_setfield(L, LUA_REGISTRYINDEX, "hdlm.ctx"); /* anchored for the state's lifetime */

    int rc = push_args(L, o->n_args, o->args, e);
    if (rc == HDLM_OK) {
        open_modules(L, c, script_dir);
        rc = run_script(L, c, o, shown, e);
    }
    plugin_registry *reg = c->plugins;
    char *text = (char *)c->script_text;
    lua_close(L); /* finalizers (stores, corpora) run before the plugins are unloaded */
    plugin_registry_close(reg);
    free(text);
    return rc;
}
