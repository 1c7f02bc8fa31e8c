/* stderr logging; the threshold comes from HDLM_LOG on first use. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_level = -1;

static int level_from_env(void) {
    const char *s = getenv("HDLM_LOG");
    if (!s) return HDLM_LOG_INFO;
    if (!strcmp(s, "debug")) return HDLM_LOG_DEBUG;
    if (!strcmp(s, "warn")) return HDLM_LOG_WARN;
    if (!strcmp(s, "error")) return HDLM_LOG_ERROR;
    return HDLM_LOG_INFO;
}

void log_set_level(int level) {
    g_level = level;
}

int log_get_level(void) {
    if (g_level < 0) g_level = level_from_env();
    return g_level;
}

static const char *level_name(int level) {
    switch (level) {
    case HDLM_LOG_DEBUG:
        return "debug";
    case HDLM_LOG_INFO:
        return "info";
    case HDLM_LOG_WARN:
        return "warning";
    default:
        return "error";
    }
}

void log_msg(int level, const char *fmt, ...) {
    if (level < log_get_level()) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hdlm: %s: ", level_name(level));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void log_plugin_cb(void *ctx, int level, const char *msg) {
    if (ctx)
        log_msg(level, "%s: %s", (const char *)ctx, msg);
    else
        log_msg(level, "%s", msg);
}
