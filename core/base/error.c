/* Error values: formatting and wrapping of one-line messages. */
#include "error.h"

#include <stdarg.h>
#include <string.h>

int error_set(error *e, int code, const char *fmt, ...) {
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int error_wrap(error *e, const char *fmt, ...) {
    if (!e) return HDLM_EINVAL;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* the prefix keeps at most half the buffer so the original message is never lost */
    snprintf(e->msg, sizeof e->msg, "%.500s: %.*s", prefix, (int)(sizeof e->msg - 504), old);
    return e->code;
}

void error_clear(error *e) {
    if (!e) return;
    e->code = HDLM_OK;
    e->msg[0] = '\0';
}

const char *error_status_str(int code) {
    switch (code) {
    case HDLM_OK:
        return "ok";
    case HDLM_ENOMEM:
        return "out of memory";
    case HDLM_EINVAL:
        return "invalid argument";
    case HDLM_EIO:
        return "i/o error";
    case HDLM_EPLUGIN:
        return "plugin error";
    case HDLM_EDB:
        return "database error";
    case HDLM_ELUA:
        return "lua error";
    case HDLM_ESTATE:
        return "invalid state";
    case HDLM_ECRASH:
        return "plugin crashed";
    default:
        return "unknown error";
    }
}
