/* Errors: status codes + a message naming the object and both sides of a mismatch.
 * Bugs use HDLM_ASSERT (abort, all builds); expected failures return a negative status and fill an
 * `error` that the caller owns. Only main() exits. */
#ifndef HDLM_ERROR_H
#define HDLM_ERROR_H

#include "hdlm/plugin.h" /* status codes HDLM_OK, HDLM_E* shared with plugins */

/* Status codes of the host only: plugins never see or return them. */
enum {
    HDLM_EDB = -5,    /* SQLite store */
    HDLM_ELUA = -6,   /* Lua script */
    HDLM_ECRASH = -8, /* a plugin op crashed (signal caught by the plugin host's guard) */
};

#include <stdio.h>
#include <stdlib.h>

typedef struct error {
    int code;       /* HDLM_OK or HDLM_E* */
    char msg[1024]; /* one line, no trailing newline */
} error;

/* Sets code and formats msg; returns code so callers can `return error_set(e, ...)`.
 * e may be NULL (the message is dropped). */
int error_set(error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes the existing message with "prefix: " (keeps the code); returns the code. */
int error_wrap(error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void error_clear(error *e);
const char *error_status_str(int code);

#define HDLM_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
