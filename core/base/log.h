/* Logging to stderr with a level threshold (HDLM_LOG env: debug|info|warn|error). */
#ifndef HDLM_LOG_H
#define HDLM_LOG_H

#include "hdlm/plugin.h" /* HDLM_LOG_* levels */

void log_set_level(int level);
int log_get_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Host-table adapter: ctx is an optional prefix string (the plugin name). */
void log_plugin_cb(void *ctx, int level, const char *msg);

#endif
