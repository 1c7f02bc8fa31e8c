/* The Lua host: runs experiment scripts with `require "hdlm"` available. The only folder that
 * includes lua.h. A script error becomes a message with a traceback and a non-zero status; runs
 * the script opened and did not finish are then marked failed in the store with that message. */
#ifndef HDLM_LUA_HOST_H
#define HDLM_LUA_HOST_H

#include "base/error.h"

typedef struct lua_host_opts {
    const char *script; /* path of the .lua file */
    int n_args;         /* "key=value" strings, exposed as hdlm.args */
    char *const *args;
    const char *db_path; /* default for hdlm.open() without a path ("runs.db") */
    const char *chunk;   /* when set: Lua source run instead of the script file; script then
                            names it in messages */
    int plain_errors;    /* errors are one line: no source location, no traceback (commands
                            running an embedded chunk, whose code the user did not write);
                            HDLM_LOG=debug keeps the traceback */
    int warn_unread;     /* on success, warn about key=value arguments the script never read */
} lua_host_opts;

/* Runs the script. On failure e->msg holds the error with its traceback (several lines; one line
 * with plain_errors). hdlm.args is a proxy that records which keys the script read: reading a key,
 * or iterating with pairs(), counts; rawget on it sees nothing. */
int lua_host_run(const lua_host_opts *o, error *e);

#endif
