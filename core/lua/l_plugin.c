/* Lua bindings of the plugin host: hdlm.plugins([kind]) lists what was found, with options;
 * the registry is loaded on first use from the build's plugin folder and HDLM_PLUGIN_PATH. */
#include "base/log.h"
#include "dist/dist.h"
#include "l_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* HDLM_PLUGIN_PATH entries that are not folders: the user named them, so a typo is reported
 * instead of ending as "unknown plugin" later. */
static void warn_missing_plugin_path(void) {
    const char *path = getenv("HDLM_PLUGIN_PATH");
    while (path && *path && dist_rank() == 0) {
        size_t len = strcspn(path, ":");
        char one[4096];
        struct stat st;
        if (len > 0 && len < sizeof one) {
            memcpy(one, path, len);
            one[len] = '\0';
            if (stat(one, &st) != 0)
                log_msg(HDLM_LOG_WARN,
                        "HDLM_PLUGIN_PATH entry '%s' does not exist (%s); no plugins are loaded "
                        "from it",
                        one, strerror(errno));
            else if (!S_ISDIR(st.st_mode))
                log_msg(
                    HDLM_LOG_WARN,
                    "HDLM_PLUGIN_PATH entry '%s' is not a folder; no plugins are loaded from it",
                    one);
        }
        path += len;
        if (*path) path++;
    }
}

plugin_registry *l_plugins(lua_State *L, l_ctx *c) {
    if (c->plugins) return c->plugins;
    warn_missing_plugin_path();
    error e = {0};
    if (plugin_registry_open(&c->plugins, &e) != HDLM_OK) l_raise(L, &e);
    c->refusals[0] = '\0';
    if (plugin_registry_load_default(c->plugins, c->refusals, sizeof c->refusals, &e) < 0)
        l_raise(L, &e);
    return c->plugins;
}

static const char *opt_type_name(uint32_t t) {
    switch (t) {
    case HDLM_OPT_NUMBER:
        return "number";
    case HDLM_OPT_INTEGER:
        return "integer";
    case HDLM_OPT_STRING:
        return "string";
    case HDLM_OPT_BOOL:
        return "boolean";
    default:
        return "?";
    }
}

/* hdlm.plugins([kind]) -> array of {kind, name, version, summary, file, hash, options = {...}} */
static int l_plugins_list(lua_State *L) {
    l_ctx *c = L_CTX(L);
    const char *kind = luaL_optstring(L, 1, NULL);
    int want = 0;
    if (kind) {
        want = plugin_kind_from_name(kind);
        if (!want)
            return luaL_error(L, "hdlm.plugins: unknown kind '%s'; kinds: noise, schedule, sampler",
                              kind);
    }
    plugin_registry *r = l_plugins(L, c);
    lua_newtable(L);
    int n = 0;
    for (size_t i = 0; i < plugin_registry_count(r); i++) {
        const plugin_entry *pe = plugin_registry_at(r, i);
        const hdlm_plugin *d = pe->desc;
        if (want && (int)d->kind != want) continue;
        lua_createtable(L, 0, 7);
        lua_pushstring(L, plugin_kind_name(d->kind));
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, d->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, d->version);
        lua_setfield(L, -2, "version");
        lua_pushstring(L, d->summary);
        lua_setfield(L, -2, "summary");
        lua_pushstring(L, pe->file);
        lua_setfield(L, -2, "file");
        lua_pushstring(L, pe->hash);
        lua_setfield(L, -2, "hash");
        lua_newtable(L);
        int k = 0;
        for (const hdlm_option *o = d->options; o && o->name; o++) {
            lua_createtable(L, 0, 4);
            lua_pushstring(L, o->name);
            lua_setfield(L, -2, "name");
            lua_pushstring(L, opt_type_name(o->type));
            lua_setfield(L, -2, "type");
            lua_pushstring(L, o->def);
            lua_setfield(L, -2, "default");
            lua_pushstring(L, o->help);
            lua_setfield(L, -2, "help");
            lua_rawseti(L, -2, ++k);
        }
        lua_setfield(L, -2, "options");
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

void l_plugin_register(lua_State *L, int ctx_idx) {
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_plugins_list, 1);
    lua_setfield(L, -2, "plugins");
}
