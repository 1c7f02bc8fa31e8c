/* JSON: a small strict RFC 8259 parser into a read-only tree, plus a growable text buffer for
 * writing JSON. Used for run configs, plugin options and safetensors headers.
 * Deliberately strict: no comments, no trailing commas, no NaN/Infinity, UTF-8 checked, duplicate
 * object keys refused (they are how ambiguous safetensors headers are built), nesting <= 64.
 * Deliberately not: a DOM you can edit, a streaming parser, or a pretty printer. */
#ifndef HDLM_JSON_H
#define HDLM_JSON_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

/* JSON_NONE is what json_type() says about a NULL pointer, so lookups chain without checks:
 * `json_type(json_get(o, "shape")) == JSON_ARRAY`. */
typedef enum json_kind {
    JSON_NONE = 0,
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_kind;

typedef struct json_value json_value; /* opaque; the whole tree is owned by the root */

/* Parses n bytes of text (need not be NUL-terminated). On success *out is the root (free with
 * json_free) and 0 is returned; on failure *out is NULL, HDLM_EINVAL (HDLM_ENOMEM) is returned and
 * e holds one line "JSON: <what> at offset <byte offset>". Any value may be the root. */
int json_parse(const char *text, size_t n, json_value **out, error *e);
void json_free(json_value *v); /* NULL ok; frees the whole tree, v must be a root */

json_kind json_type(const json_value *v);   /* JSON_NONE for NULL */
const char *json_type_name(json_kind kind); /* "null", "a number", "an object", ... */

/* Numbers. json_number: the value as a double (0 for non-numbers). json_is_int: the text had no
 * fraction or exponent and fits in int64; then json_int is exact (also beyond 2^53). */
double json_number(const json_value *v);
int json_is_int(const json_value *v);
int64_t json_int(const json_value *v);
int json_bool(const json_value *v); /* 1 for true, 0 otherwise */

/* Strings: unescaped UTF-8, NUL-terminated; json_string_len counts bytes (a \u0000 escape makes
 * an embedded NUL). NULL / 0 for non-strings. */
const char *json_string(const json_value *v);
size_t json_string_len(const json_value *v);

/* Arrays and objects: json_len is the number of elements / members (0 for other kinds). Objects
 * keep the order of the text. Out-of-range indices and wrong kinds give NULL. */
size_t json_len(const json_value *v);
const json_value *json_at(const json_value *arr, size_t i);
const json_value *json_get(const json_value *obj, const char *key); /* NULL if absent */
const char *json_key_at(const json_value *obj, size_t i);
size_t json_key_len(const json_value *obj, size_t i); /* bytes; a key may hold \u0000 */
const json_value *json_value_at(const json_value *obj, size_t i);

/* 1 if the n bytes at s are well-formed UTF-8 (no overlongs, surrogates or code points beyond
 * U+10FFFF), which is what the parser demands inside strings. */
int json_utf8_valid(const char *s, size_t n);

/* ---- writing ---- */

/* A growable NUL-terminated text buffer; zero-initialise (`json_buf b = {0};`), append, read
 * b.data / b.len, then json_buf_free. Appends return 0 or HDLM_ENOMEM; after a failed append the
 * buffer keeps its earlier content and `failed` stays set, so callers may check once at the end. */
typedef struct json_buf {
    char *data; /* NULL until the first append */
    size_t len; /* bytes, excluding the terminating NUL */
    size_t cap;
    int failed; /* an allocation failed at some point */
} json_buf;

int json_buf_raw(json_buf *b, const char *s);            /* appends s verbatim */
int json_buf_rawn(json_buf *b, const char *s, size_t n); /* appends n bytes verbatim */
int json_buf_str(json_buf *b, const char *s);            /* appends s quoted and escaped */
int json_buf_strn(json_buf *b, const char *s, size_t n); /* same for n bytes (NULs allowed) */
int json_buf_num(json_buf *b, double x);                 /* shortest round-trip; NaN/Inf: null */
int json_buf_int(json_buf *b, int64_t x);                /* exact integer */
int json_buf_value(json_buf *b, const json_value *v);    /* compact serialisation of a tree */
void json_buf_free(json_buf *b);                         /* NULL ok; leaves b zeroed */

#endif
