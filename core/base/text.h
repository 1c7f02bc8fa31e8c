/* Small text helpers shared by the CLI, the Lua bindings and the plugin host: edit distance and
 * "did you mean" suggestions for unknown names and keys. */
#ifndef HDLM_TEXT_H
#define HDLM_TEXT_H

#include <stddef.h>

/* Levenshtein distance (byte-wise). */
size_t text_edit_distance(const char *a, const char *b);
/* The candidate closest to key, or NULL when none is within max(2, strlen(key)/3) edits.
 * cands: n strings (NULL entries skipped). */
const char *text_closest(const char *key, const char *const *cands, size_t n);

#endif
