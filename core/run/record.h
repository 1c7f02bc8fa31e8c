/* A run's results and settings as one flat list of named values: the evaluation bindings push it
 * as a Lua table, the store keeps it as JSON text with sorted keys (the form configs and settings
 * have always had, so equal settings give equal text). One list, two renderings: the Lua result
 * and the stored settings cannot drift apart. */
#ifndef HDLM_RECORD_H
#define HDLM_RECORD_H

#include "base/json.h"

#include <stdint.h>

typedef enum record_kind {
    RECORD_NUM,  /* double (NaN/Inf stored as null) */
    RECORD_INT,  /* int64 */
    RECORD_STR,  /* UTF-8 text */
    RECORD_BOOL, /* 0/1 */
    RECORD_JSON  /* a JSON value (text), e.g. a plugin's {name, version, options} */
} record_kind;

typedef struct record_entry {
    char *key;
    record_kind kind;
    double d;
    int64_t i;
    char *s; /* RECORD_STR, RECORD_JSON */
} record_entry;

/* Zero-initialise (`record r = {0};`). Setting a key again replaces its value. Setters return 0 or
 * HDLM_ENOMEM; after a failure `failed` stays set, so callers may check once at the end. */
typedef struct record {
    record_entry *e;
    int n, cap;
    int failed;
} record;

int record_num(record *r, const char *key, double v);
int record_int(record *r, const char *key, int64_t v);
int record_str(record *r, const char *key, const char *v);
int record_bool(record *r, const char *key, int v);
int record_json(record *r, const char *key, const char *json); /* NULL json: "{}" */
/* Adds every member of the JSON object text (a sample's stored settings), replacing keys that
 * exist; numbers keep their kind (integers stay integers). Non-objects are ignored. */
int record_merge_object(record *r, const char *json);
const record_entry *record_get(const record *r, const char *key);
/* The list as a JSON object with keys sorted byte-wise, nested objects too (an empty array is
 * written {} like an empty Lua table). Appends to b. */
int record_write_json(const record *r, json_buf *b);
/* A JSON value written in that canonical form (sorted keys). */
int record_canonical_json(const char *json, json_buf *b);
void record_free(record *r);

#endif
