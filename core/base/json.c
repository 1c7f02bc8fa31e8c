/* JSON parser (recursive descent into malloc'd nodes) and JSON text buffer.
 * Numbers are checked against the RFC grammar here and converted with strtod, so their value is
 * correctly rounded; a locale with a ',' decimal point is worked around in both directions.
 * Not done: editing trees, comments, non-UTF-8 input, more than JSON_MAX_DEPTH nesting. */
#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_value {
    json_kind kind;
    int is_int;   /* number: integer text that fits int64 */
    int bval;     /* bool */
    int64_t ival; /* number: exact when is_int */
    double num;   /* number */
    char *str;    /* string: NUL-terminated UTF-8 */
    size_t slen;
    size_t n;           /* array / object: element count */
    json_value **items; /* (n) array elements or object member values */
    char **keys;        /* (n) object keys, NUL-terminated */
    size_t *klens;      /* (n) key byte lengths (keys may hold \u0000) */
};

/* ---------------------------------------------------------------- tree access */

json_kind json_type(const json_value *v) {
    return v ? v->kind : JSON_NONE;
}

const char *json_type_name(json_kind kind) {
    switch (kind) {
    case JSON_NULL:
        return "null";
    case JSON_BOOL:
        return "a boolean";
    case JSON_NUMBER:
        return "a number";
    case JSON_STRING:
        return "a string";
    case JSON_ARRAY:
        return "an array";
    case JSON_OBJECT:
        return "an object";
    default:
        return "nothing";
    }
}

double json_number(const json_value *v) {
    return v && v->kind == JSON_NUMBER ? v->num : 0.0;
}

int json_is_int(const json_value *v) {
    return v && v->kind == JSON_NUMBER && v->is_int;
}

int64_t json_int(const json_value *v) {
    if (!v || v->kind != JSON_NUMBER) return 0;
    if (v->is_int) return v->ival;
    /* saturate: converting an out-of-range double to int64 is undefined */
    if (v->num >= 9223372036854775807.0) return INT64_MAX;
    if (v->num <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v->num;
}

int json_bool(const json_value *v) {
    return v && v->kind == JSON_BOOL && v->bval;
}

const char *json_string(const json_value *v) {
    return v && v->kind == JSON_STRING ? v->str : NULL;
}

size_t json_string_len(const json_value *v) {
    return v && v->kind == JSON_STRING ? v->slen : 0;
}

size_t json_len(const json_value *v) {
    return v && (v->kind == JSON_ARRAY || v->kind == JSON_OBJECT) ? v->n : 0;
}

const json_value *json_at(const json_value *arr, size_t i) {
    return arr && arr->kind == JSON_ARRAY && i < arr->n ? arr->items[i] : NULL;
}

const json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->kind != JSON_OBJECT || !key) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->klens[i] == kl && !memcmp(obj->keys[i], key, kl)) return obj->items[i];
    return NULL;
}

const char *json_key_at(const json_value *obj, size_t i) {
    return obj && obj->kind == JSON_OBJECT && i < obj->n ? obj->keys[i] : NULL;
}

size_t json_key_len(const json_value *obj, size_t i) {
    return obj && obj->kind == JSON_OBJECT && i < obj->n ? obj->klens[i] : 0;
}

const json_value *json_value_at(const json_value *obj, size_t i) {
    return obj && obj->kind == JSON_OBJECT && i < obj->n ? obj->items[i] : NULL;
}

void json_free(json_value *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->klens);
    free(v->str);
    free(v);
}

/* ---------------------------------------------------------------- parser */

typedef struct parser {
    const unsigned char *s;
    size_t n, pos;
    error *e;
} parser;

/* "'x'", "end of input" or "byte 0xNN" for the byte at offset i. */
static const char *describe_at(const parser *p, size_t i, char buf[16]) {
    if (i >= p->n) return "end of input";
    unsigned c = p->s[i];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", (char)c);
    else
        snprintf(buf, 16, "byte 0x%02X", c);
    return buf;
}

static int fail_at(parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(parser *p, size_t off, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return error_set(p->e, HDLM_EINVAL, "JSON: %s at offset %zu", what, off);
}

/* "<what> at offset N (found X)" for the byte at the current position. */
static int fail_found(parser *p, const char *what) {
    char buf[16];
    const char *found = describe_at(p, p->pos, buf);
    return error_set(p->e, HDLM_EINVAL, "JSON: %s at offset %zu (found %s)", what, p->pos, found);
}

static int fail_oom(parser *p) {
    return error_set(p->e, HDLM_ENOMEM, "JSON: out of memory at offset %zu", p->pos);
}

static void skip_ws(parser *p) {
    while (p->pos < p->n) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *dst, unsigned cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at s (at most avail bytes), or 0 if it is not one
 * (overlong forms, UTF-16 surrogates and code points above U+10FFFF are not well formed). */
static size_t utf8_valid_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (avail < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

int json_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_valid_len(u + i, n - i);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

/* Parses the string whose opening quote is at p->pos; returns a malloc'd NUL-terminated copy. */
static int parse_string(parser *p, char **out, size_t *out_len) {
    size_t start = p->pos;
    size_t i = start + 1;
    /* first pass: find the closing quote so the output can be sized (never longer than input) */
    while (i < p->n && p->s[i] != '"')
        i += p->s[i] == '\\' ? 2 : 1;
    if (i >= p->n) return fail_at(p, start, "unterminated string");
    size_t end = i;
    char *buf = malloc(end - start);
    if (!buf) return fail_oom(p);
    size_t k = 0;
    i = start + 1;
    while (i < end) {
        unsigned c = p->s[i];
        if (c == '\\') {
            unsigned esc = p->s[i + 1];
            switch (esc) {
            case '"':
                buf[k++] = '"';
                break;
            case '\\':
                buf[k++] = '\\';
                break;
            case '/':
                buf[k++] = '/';
                break;
            case 'b':
                buf[k++] = '\b';
                break;
            case 'f':
                buf[k++] = '\f';
                break;
            case 'n':
                buf[k++] = '\n';
                break;
            case 'r':
                buf[k++] = '\r';
                break;
            case 't':
                buf[k++] = '\t';
                break;
            case 'u': {
                unsigned cp, lo;
                if (end - i < 6 || hex4(p->s + i + 2, &cp)) {
                    free(buf);
                    return fail_at(p, i, "bad \\u escape (4 hex digits expected)");
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    free(buf);
                    return fail_at(p, i, "lone surrogate \\u%04X", cp);
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    /* a high surrogate must be followed by an escaped low surrogate */
                    if (end - i < 12 || p->s[i + 6] != '\\' || p->s[i + 7] != 'u' ||
                        hex4(p->s + i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        free(buf);
                        return fail_at(p, i, "lone surrogate \\u%04X", cp);
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
                k += utf8_put(buf + k, cp);
                i += 4; /* plus the 2 below */
                break;
            }
            default: {
                free(buf);
                char d[16];
                return fail_at(p, i, "bad escape \\ followed by %s", describe_at(p, i + 1, d));
            }
            }
            i += 2;
        } else if (c < 0x20) {
            free(buf);
            return fail_at(p, i, "unescaped control character 0x%02X in string", c);
        } else if (c < 0x80) {
            buf[k++] = (char)c;
            i++;
        } else {
            size_t len = utf8_valid_len(p->s + i, end - i);
            if (!len) {
                free(buf);
                return fail_at(p, i, "invalid UTF-8 in string");
            }
            memcpy(buf + k, p->s + i, len);
            k += len;
            i += len;
        }
    }
    buf[k] = '\0';
    p->pos = end + 1;
    *out = buf;
    *out_len = k;
    return 0;
}

/* The locale's decimal point if it is not '.', else 0 (strtod/printf follow LC_NUMERIC). */
static char locale_point(void) {
    const char *dp = localeconv()->decimal_point;
    return dp && dp[0] && dp[0] != '.' && !dp[1] ? dp[0] : 0;
}

static int parse_number(parser *p, json_value *v) {
    const unsigned char *s = p->s;
    size_t start = p->pos, i = start;
    int neg = 0, is_int = 1, overflow = 0;
    uint64_t mag = 0; /* magnitude of the integer part */
    if (s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= p->n || s[i] < '0' || s[i] > '9') {
        p->pos = i;
        return fail_found(p, "digit expected in number");
    }
    if (s[i] == '0' && i + 1 < p->n && s[i + 1] >= '0' && s[i + 1] <= '9')
        return fail_at(p, start, "number with a leading zero");
    for (; i < p->n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = s[i] - '0';
        if (mag > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            mag = mag * 10 + d;
    }
    if (i < p->n && s[i] == '.') {
        is_int = 0;
        i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9') {
            p->pos = i;
            return fail_found(p, "digit expected after '.' in number");
        }
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        is_int = 0;
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9') {
            p->pos = i;
            return fail_found(p, "digit expected in exponent");
        }
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    /* strtod needs a terminated copy; short numbers use the stack */
    size_t len = i - start;
    char small[64], *tmp = len < sizeof small ? small : malloc(len + 1);
    if (!tmp) return fail_oom(p);
    memcpy(tmp, s + start, len);
    tmp[len] = '\0';
    char dp = locale_point();
    if (dp)
        for (size_t k = 0; k < len; k++)
            if (tmp[k] == '.') tmp[k] = dp;
    double x = strtod(tmp, NULL);
    if (tmp != small) free(tmp);
    if (isinf(x)) return fail_at(p, start, "number out of range");
    v->kind = JSON_NUMBER;
    v->num = x;
    if (is_int && !overflow && mag <= (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
        v->is_int = 1;
        v->ival = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    }
    p->pos = i;
    return 0;
}

static int parse_value(parser *p, int depth, json_value **out);

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    while (nc < need)
        nc *= 2;
    void *na = realloc(*arr, nc * elem);
    if (!na) return -1;
    *arr = na;
    *cap = nc;
    return 0;
}

static int parse_array(parser *p, int depth, json_value *v) {
    size_t cap = 0;
    v->kind = JSON_ARRAY;
    p->pos++; /* '[' */
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ']') {
        p->pos++;
        return 0;
    }
    for (;;) {
        json_value *item;
        int rc = parse_value(p, depth, &item);
        if (rc) return rc;
        if (grow((void **)&v->items, &cap, v->n + 1, sizeof *v->items)) {
            json_free(item);
            return fail_oom(p);
        }
        v->items[v->n++] = item;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ']') {
            p->pos++;
            return 0;
        }
        if (p->pos >= p->n || p->s[p->pos] != ',') return fail_found(p, "expected ',' or ']'");
        size_t comma = p->pos++;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == ']') return fail_at(p, comma, "trailing comma");
    }
}

typedef struct key_ref {
    const char *key;
    size_t len, idx, off;
} key_ref;

static int cmp_key_ref(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, m);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Refuses duplicate keys, naming the first repeated one in text order. Sorting keeps this
 * O(n log n) for safetensors headers with many thousands of tensors. */
static int check_duplicates(parser *p, const json_value *v, const size_t *offs) {
    if (v->n < 2) return 0;
    key_ref *refs = malloc(v->n * sizeof *refs);
    if (!refs) return fail_oom(p);
    for (size_t i = 0; i < v->n; i++)
        refs[i] = (key_ref){v->keys[i], v->klens[i], i, offs[i]};
    qsort(refs, v->n, sizeof *refs, cmp_key_ref);
    size_t best = (size_t)-1;
    for (size_t i = 1; i < v->n; i++)
        if (refs[i].len == refs[i - 1].len && !memcmp(refs[i].key, refs[i - 1].key, refs[i].len) &&
            (best == (size_t)-1 || refs[i].idx < refs[best].idx))
            best = i;
    int rc = 0;
    if (best != (size_t)-1)
        rc = fail_at(p, refs[best].off, "duplicate key \"%.64s\"", refs[best].key);
    free(refs);
    return rc;
}

static int parse_object(parser *p, int depth, json_value *v) {
    size_t cap = 0, kcap = 0, lcap = 0, ocap = 0;
    size_t *offs = NULL; /* (n) text offset of each key, for the duplicate-key message */
    int rc = 0;
    v->kind = JSON_OBJECT;
    p->pos++; /* '{' */
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (p->pos >= p->n || p->s[p->pos] != '"') {
            rc = fail_found(p, "expected '\"' (an object key)");
            break;
        }
        size_t koff = p->pos;
        char *key;
        size_t klen;
        if ((rc = parse_string(p, &key, &klen))) break;
        skip_ws(p);
        if (p->pos >= p->n || p->s[p->pos] != ':') {
            free(key);
            rc = fail_found(p, "expected ':'");
            break;
        }
        p->pos++;
        json_value *item;
        if ((rc = parse_value(p, depth, &item))) {
            free(key);
            break;
        }
        if (grow((void **)&v->items, &cap, v->n + 1, sizeof *v->items) ||
            grow((void **)&v->keys, &kcap, v->n + 1, sizeof *v->keys) ||
            grow((void **)&v->klens, &lcap, v->n + 1, sizeof *v->klens) ||
            grow((void **)&offs, &ocap, v->n + 1, sizeof *offs)) {
            free(key);
            json_free(item);
            rc = fail_oom(p);
            break;
        }
        v->items[v->n] = item;
        v->keys[v->n] = key;
        v->klens[v->n] = klen;
        offs[v->n] = koff;
        v->n++;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == '}') {
            p->pos++;
            rc = check_duplicates(p, v, offs);
            break;
        }
        if (p->pos >= p->n || p->s[p->pos] != ',') {
            rc = fail_found(p, "expected ',' or '}'");
            break;
        }
        size_t comma = p->pos++;
        skip_ws(p);
        if (p->pos < p->n && p->s[p->pos] == '}') {
            rc = fail_at(p, comma, "trailing comma");
            break;
        }
    }
    free(offs);
    return rc;
}

static int parse_literal(parser *p, const char *word, json_value *v) {
    size_t len = strlen(word);
    if (p->n - p->pos < len || memcmp(p->s + p->pos, word, len))
        return fail_at(p, p->pos, "invalid literal (true, false or null expected)");
    p->pos += len;
    if (word[0] == 'n')
        v->kind = JSON_NULL;
    else {
        v->kind = JSON_BOOL;
        v->bval = word[0] == 't';
    }
    return 0;
}

/* depth: number of arrays/objects enclosing this value. */
static int parse_value(parser *p, int depth, json_value **out) {
    *out = NULL;
    skip_ws(p);
    if (p->pos >= p->n) return fail_found(p, "expected a value");
    json_value *v = calloc(1, sizeof *v);
    if (!v) return fail_oom(p);
    int rc;
    unsigned c = p->s[p->pos];
    switch (c) {
    case '{':
    case '[':
        if (depth >= JSON_MAX_DEPTH) {
            rc = fail_at(p, p->pos, "nesting deeper than %d", JSON_MAX_DEPTH);
            break;
        }
        rc = c == '{' ? parse_object(p, depth + 1, v) : parse_array(p, depth + 1, v);
        break;
    case '"':
        v->kind = JSON_STRING;
        rc = parse_string(p, &v->str, &v->slen);
        break;
    case 't':
        rc = parse_literal(p, "true", v);
        break;
    case 'f':
        rc = parse_literal(p, "false", v);
        break;
    case 'n':
        rc = parse_literal(p, "null", v);
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            rc = parse_number(p, v);
        else
            rc = fail_found(p, "expected a value");
    }
    if (rc) {
        json_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

int json_parse(const char *text, size_t n, json_value **out, error *e) {
    HDLM_ASSERT(out && (text || n == 0));
    *out = NULL;
    parser p = {(const unsigned char *)(text ? text : ""), n, 0, e};
    json_value *root;
    int rc = parse_value(&p, 0, &root);
    if (rc) return rc;
    skip_ws(&p);
    if (p.pos < p.n) {
        json_free(root);
        return fail_found(&p, "unexpected data after the value");
    }
    *out = root;
    return 0;
}

/* ---------------------------------------------------------------- writer */

static int buf_reserve(json_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < b->len + extra + 1)
        nc *= 2;
    char *nd = realloc(b->data, nc);
    if (!nd) {
        b->failed = 1;
        return HDLM_ENOMEM;
    }
    b->data = nd;
    b->cap = nc;
    return 0;
}

int json_buf_rawn(json_buf *b, const char *s, size_t n) {
    HDLM_ASSERT(b && (s || n == 0));
    if (buf_reserve(b, n)) return HDLM_ENOMEM;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int json_buf_raw(json_buf *b, const char *s) {
    return json_buf_rawn(b, s, strlen(s));
}

int json_buf_strn(json_buf *b, const char *s, size_t n) {
    HDLM_ASSERT(b && (s || n == 0));
    /* worst case: every byte becomes \u00XX (6) or U+FFFD as \ufffd (6) */
    if (buf_reserve(b, 6 * n + 2)) return HDLM_ENOMEM;
    char *d = b->data + b->len;
    const unsigned char *u = (const unsigned char *)s;
    *d++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c >= 0x80) {
            /* invalid UTF-8 would make the output unreadable JSON: replace the byte by U+FFFD */
            size_t len = utf8_valid_len(u + i, n - i);
            if (len) {
                memcpy(d, u + i, len);
                d += len;
                i += len;
            } else {
                memcpy(d, "\\ufffd", 6);
                d += 6;
                i++;
            }
            continue;
        }
        i++;
        switch (c) {
        case '"':
            *d++ = '\\', *d++ = '"';
            break;
        case '\\':
            *d++ = '\\', *d++ = '\\';
            break;
        case '\n':
            *d++ = '\\', *d++ = 'n';
            break;
        case '\r':
            *d++ = '\\', *d++ = 'r';
            break;
        case '\t':
            *d++ = '\\', *d++ = 't';
            break;
        case '\b':
            *d++ = '\\', *d++ = 'b';
            break;
        case '\f':
            *d++ = '\\', *d++ = 'f';
            break;
        default:
            if (c < 0x20) {
                snprintf(d, 7, "\\u%04x", c);
                d += 6;
            } else
                *d++ = (char)c;
        }
    }
    *d++ = '"';
    b->len = (size_t)(d - b->data);
    b->data[b->len] = '\0';
    return 0;
}

int json_buf_str(json_buf *b, const char *s) {
    return json_buf_strn(b, s, strlen(s));
}

int json_buf_int(json_buf *b, int64_t x) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)x);
    return json_buf_raw(b, tmp);
}

int json_buf_num(json_buf *b, double x) {
    if (!isfinite(x)) return json_buf_raw(b, "null");
    if (x == 0) return json_buf_raw(b, signbit(x) ? "-0" : "0");
    if (x == floor(x) && fabs(x) < 1e18) return json_buf_int(b, (int64_t)x);
    /* the shortest of %.15g..%.17g that reads back to the same double (0.1 stays "0.1") */
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, x);
        if (strtod(tmp, NULL) == x) break;
    }
    char dp = locale_point();
    if (dp)
        for (char *c = tmp; *c; c++)
            if (*c == dp) *c = '.';
    return json_buf_raw(b, tmp);
}

static int buf_value(json_buf *b, const json_value *v) {
    switch (json_type(v)) {
    case JSON_NULL:
        return json_buf_raw(b, "null");
    case JSON_BOOL:
        return json_buf_raw(b, v->bval ? "true" : "false");
    case JSON_NUMBER: /* integers exactly (also beyond 2^53); "-0" keeps its sign */
        return v->is_int && v->ival ? json_buf_int(b, v->ival) : json_buf_num(b, v->num);
    case JSON_STRING:
        return json_buf_strn(b, v->str, v->slen);
    case JSON_ARRAY:
        json_buf_raw(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i) json_buf_raw(b, ",");
            buf_value(b, v->items[i]);
        }
        return json_buf_raw(b, "]");
    case JSON_OBJECT:
        json_buf_raw(b, "{");
        for (size_t i = 0; i < v->n; i++) {
            if (i) json_buf_raw(b, ",");
            json_buf_strn(b, v->keys[i], v->klens[i]);
            json_buf_raw(b, ":");
            buf_value(b, v->items[i]);
        }
        return json_buf_raw(b, "}");
    default:
        HDLM_ASSERT(!"json_buf_value: NULL or invalid value");
        return HDLM_EINVAL;
    }
}

int json_buf_value(json_buf *b, const json_value *v) {
    buf_value(b, v);
    return b->failed ? HDLM_ENOMEM : 0;
}

void json_buf_free(json_buf *b) {
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}
