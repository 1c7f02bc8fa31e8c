/* The flat result list of record.h and its canonical JSON text. */
#include "run/record.h"

#include "base/error.h"

#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* The entry for key, made when absent (its old text freed when present); NULL when out of
 * memory. */
static record_entry *slot(record *r, const char *key) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->e[i].key, key)) {
            free(r->e[i].s);
            r->e[i].s = NULL;
            return &r->e[i];
        }
    if (r->n == r->cap) {
        int nc = r->cap ? 2 * r->cap : 32;
        record_entry *ne = realloc(r->e, (size_t)nc * sizeof *ne);
        if (!ne) {
            r->failed = 1;
            return NULL;
        }
        r->e = ne, r->cap = nc;
    }
    record_entry *x = &r->e[r->n];
    memset(x, 0, sizeof *x);
    if (!(x->key = dup_str(key))) {
        r->failed = 1;
        return NULL;
    }
    r->n++;
    return x;
}

int record_num(record *r, const char *key, double v) {
    record_entry *x = slot(r, key);
    if (!x) return HDLM_ENOMEM;
    x->kind = RECORD_NUM, x->d = v;
    return HDLM_OK;
}

int record_int(record *r, const char *key, int64_t v) {
    record_entry *x = slot(r, key);
    if (!x) return HDLM_ENOMEM;
    x->kind = RECORD_INT, x->i = v;
    return HDLM_OK;
}

int record_bool(record *r, const char *key, int v) {
    record_entry *x = slot(r, key);
    if (!x) return HDLM_ENOMEM;
    x->kind = RECORD_BOOL, x->i = v != 0;
    return HDLM_OK;
}

static int set_text(record *r, const char *key, record_kind kind, const char *v) {
    record_entry *x = slot(r, key);
    if (!x) return HDLM_ENOMEM;
    x->kind = kind;
    if (!(x->s = dup_str(v))) {
        r->failed = 1;
        x->kind = RECORD_BOOL; /* a valid entry without text */
        return HDLM_ENOMEM;
    }
    return HDLM_OK;
}

int record_str(record *r, const char *key, const char *v) {
    return set_text(r, key, RECORD_STR, v ? v : "");
}

int record_json(record *r, const char *key, const char *json) {
    return set_text(r, key, RECORD_JSON, json ? json : "{}");
}

int record_merge_object(record *r, const char *json) {
    json_value *v = NULL;
    if (!json || json_parse(json, strlen(json), &v, NULL) != HDLM_OK) return HDLM_OK;
    int rc = HDLM_OK;
    for (size_t i = 0; json_type(v) == JSON_OBJECT && i < json_len(v) && rc == HDLM_OK; i++) {
        const char *k = json_key_at(v, i);
        const json_value *x = json_value_at(v, i);
        switch (json_type(x)) {
        case JSON_NUMBER:
            rc = json_is_int(x) ? record_int(r, k, json_int(x)) : record_num(r, k, json_number(x));
            break;
        case JSON_STRING:
            rc = record_str(r, k, json_string(x));
            break;
        case JSON_BOOL:
            rc = record_bool(r, k, json_bool(x));
            break;
        case JSON_NULL: /* a nil in a Lua table: no key */
            break;
        default: {
            json_buf b = {0};
            json_buf_value(&b, x);
            rc = b.failed ? HDLM_ENOMEM : record_json(r, k, b.data);
            json_buf_free(&b);
        }
        }
    }
    json_free(v);
    return rc;
}

const record_entry *record_get(const record *r, const char *key) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->e[i].key, key)) return &r->e[i];
    return NULL;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void write_value(const json_value *v, json_buf *b);

static void write_object(const json_value *v, json_buf *b) {
    size_t n = json_len(v);
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys) {
        b->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        keys[i] = json_key_at(v, i);
    qsort(keys, n, sizeof *keys, cmp_cstr);
    json_buf_raw(b, "{");
    for (size_t i = 0; i < n; i++) {
        if (i) json_buf_raw(b, ",");
        json_buf_str(b, keys[i]);
        json_buf_raw(b, ":");
        write_value(json_get(v, keys[i]), b);
    }
    json_buf_raw(b, "}");
    free(keys);
}

/* The form a value decoded into Lua and encoded back takes: integers as integers, other numbers
 * shortest round-trip, empty arrays as {} */
static void write_value(const json_value *v, json_buf *b) {
    switch (json_type(v)) {
    case JSON_NUMBER:
        if (json_is_int(v))
            json_buf_int(b, json_int(v));
        else
            json_buf_num(b, json_number(v));
        return;
    case JSON_STRING:
        json_buf_strn(b, json_string(v), json_string_len(v));
        return;
    case JSON_BOOL:
        json_buf_raw(b, json_bool(v) ? "true" : "false");
        return;
    case JSON_ARRAY:
        if (!json_len(v)) {
            json_buf_raw(b, "{}");
            return;
        }
        json_buf_raw(b, "[");
        for (size_t i = 0; i < json_len(v); i++) {
            if (i) json_buf_raw(b, ",");
            write_value(json_at(v, i), b);
        }
        json_buf_raw(b, "]");
        return;
    case JSON_OBJECT:
        write_object(v, b);
        return;
    default:
        json_buf_raw(b, "null");
    }
}

int record_canonical_json(const char *json, json_buf *b) {
    json_value *v = NULL;
    if (json_parse(json, strlen(json), &v, NULL) != HDLM_OK) return json_buf_raw(b, "null");
    write_value(v, b);
    json_free(v);
    return b->failed ? HDLM_ENOMEM : HDLM_OK;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp((*(const record_entry *const *)a)->key, (*(const record_entry *const *)b)->key);
}

int record_write_json(const record *r, json_buf *b) {
    const record_entry **order = malloc((size_t)(r->n ? r->n : 1) * sizeof *order);
    if (!order) return HDLM_ENOMEM;
    for (int i = 0; i < r->n; i++)
        order[i] = &r->e[i];
    qsort(order, (size_t)r->n, sizeof *order, cmp_entry);
    json_buf_raw(b, "{");
    for (int i = 0; i < r->n; i++) {
        const record_entry *x = order[i];
        if (i) json_buf_raw(b, ",");
        json_buf_str(b, x->key);
        json_buf_raw(b, ":");
        switch (x->kind) {
        case RECORD_NUM:
            json_buf_num(b, x->d);
            break;
        case RECORD_INT:
            json_buf_int(b, x->i);
            break;
        case RECORD_STR:
            json_buf_str(b, x->s);
            break;
        case RECORD_BOOL:
            json_buf_raw(b, x->i ? "true" : "false");
            break;
        case RECORD_JSON:
            record_canonical_json(x->s, b);
            break;
        }
    }
    json_buf_raw(b, "}");
    free(order);
    return b->failed || r->failed ? HDLM_ENOMEM : HDLM_OK;
}

void record_free(record *r) {
    for (int i = 0; i < r->n; i++)
        free(r->e[i].key), free(r->e[i].s);
    free(r->e);
    memset(r, 0, sizeof *r);
}
