/* Printing query results for `hdlm query` and `hdlm runs`: an aligned table, CSV (RFC 4180
 * quoting) or a JSON array of objects, reals with every digit in CSV and JSON. The store only
 * runs the query (store_query_cols); how rows look on a terminal is the command line's business. */
#include "app/query_print.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Shortest "%.Ng" that reads back as the same double (exports must not lose digits). */
static void fmt_real_exact(double d, char *out, size_t cap) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, d);
        if (strtod(out, NULL) == d) return;
    }
}

/* A value as display text into a malloc'd string (NULL on out of memory). exact: all digits of
 * reals (CSV, JSON) rather than %g (table). Blobs are shown as x'hex'. */
static char *value_text(const store_value *v, int exact) {
    char num[64];
    const char *src = num;
    size_t len;
    switch (v->type) {
    case STORE_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->i);
        break;
    case STORE_REAL:
        if (exact)
            fmt_real_exact(v->d, num, sizeof num);
        else
            snprintf(num, sizeof num, "%g", v->d);
        break;
    case STORE_TEXT:
        src = v->s ? v->s : "";
        break;
    case STORE_BLOB: {
        char *out = malloc(3 + 2 * (size_t)v->len + 1);
        if (!out) return NULL;
        size_t n = 0;
        out[n++] = 'x';
        out[n++] = '\'';
        for (int64_t i = 0; i < v->len; i++)
            n += (size_t)snprintf(out + n, 3, "%02x", (unsigned char)v->s[i]);
        out[n++] = '\'';
        out[n] = '\0';
        return out;
    }
    default:
        num[0] = '\0';
        break;
    }
    len = v->type == STORE_TEXT ? (size_t)v->len : strlen(src);
    char *out = malloc(len + 1);
    if (!out) return NULL;
    memcpy(out, src, len);
    out[len] = '\0';
    return out;
}

static void json_write_string(FILE *out, const char *s, size_t len) {
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            fputs("\\\"", out);
        else if (c == '\\')
            fputs("\\\\", out);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void csv_write_field(FILE *out, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Table cells: text with control characters made visible so that each row stays on one line. */
static size_t display_width(const char *s) {
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) w++; /* count UTF-8 code points, not bytes */
    return w;
}

static char *table_cell(const store_value *v) {
    char *raw = value_text(v, 0);
    if (!raw || v->type != STORE_TEXT) return raw;
    size_t n = 0;
    for (const char *p = raw; *p; p++)
        n += ((unsigned char)*p < 0x20) ? 2 : 1;
    char *out = malloc(n + 1);
    if (!out) {
        free(raw);
        return NULL;
    }
    size_t k = 0;
    for (const char *p = raw; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20) {
            out[k++] = (char)c;
            continue;
        }
        out[k++] = '\\';
        out[k++] = c == '\n' ? 'n' : c == '\t' ? 't' : c == '\r' ? 'r' : '?';
    }
    out[k] = '\0';
    free(raw);
    return out;
}

typedef struct print_state {
    int format;
    FILE *out;
    int ncol;
    char **names; /* (ncol) owned copies, for the table and JSON */
    char **cells; /* (n_rows, ncol) table cells, owned */
    int *numeric; /* (ncol) 1 while every non-NULL cell of the column is a number */
    size_t n_rows, cap_rows;
    size_t n_json; /* rows written to the JSON array so far */
    int n_sets;    /* result sets printed so far */
    int failed;    /* out of memory */
} print_state;

static void print_table_flush(print_state *ps) {
    if (ps->ncol == 0) return;
    FILE *out = ps->out;
    size_t *w = calloc((size_t)ps->ncol, sizeof *w);
    if (!w) {
        ps->failed = 1;
        return;
    }
    for (int c = 0; c < ps->ncol; c++) {
        w[c] = display_width(ps->names[c]);
        for (size_t r = 0; r < ps->n_rows; r++) {
            size_t cw = display_width(ps->cells[r * (size_t)ps->ncol + (size_t)c]);
            if (cw > w[c]) w[c] = cw;
        }
    }
    if (ps->n_sets++ > 0) fputc('\n', out);
    /* Row -2 is the header, -1 the separator. Numbers are right-aligned. Padding and column gaps
     * are written only when something follows them, so lines carry no trailing spaces. */
    for (long r = -2; r < (long)ps->n_rows; r++) {
        size_t spaces = 0;
        for (int c = 0; c < ps->ncol; c++) {
            const char *cell = r == -2   ? ps->names[c]
                               : r == -1 ? ""
                                         : ps->cells[(size_t)r * (size_t)ps->ncol + (size_t)c];
            size_t pad = r == -1 ? 0 : w[c] - display_width(cell);
            if (c) spaces += 2;
            if (ps->numeric[c]) spaces += pad;
            if (r == -1 || *cell)
                for (; spaces; spaces--)
                    fputc(' ', out);
            if (r == -1)
                for (size_t i = 0; i < w[c]; i++)
                    fputc('-', out);
            else
                fputs(cell, out);
            if (!ps->numeric[c]) spaces += pad;
        }
        fputc('\n', out);
    }
    fprintf(out, "(%zu row%s)\n", ps->n_rows, ps->n_rows == 1 ? "" : "s");
    free(w);
}

static void print_state_reset(print_state *ps) {
    for (size_t i = 0; i < ps->n_rows * (size_t)ps->ncol; i++)
        free(ps->cells[i]);
    for (int c = 0; c < ps->ncol; c++)
        free(ps->names[c]);
    free(ps->names);
    free(ps->cells);
    free(ps->numeric);
    ps->names = ps->cells = NULL;
    ps->numeric = NULL;
    ps->ncol = 0;
    ps->n_rows = ps->cap_rows = 0;
}

static int print_on_columns(void *ud, int ncol, const char *const *names) {
    print_state *ps = ud;
    if (ps->format == QUERY_FMT_TABLE) print_table_flush(ps);
    print_state_reset(ps);
    ps->names = calloc((size_t)ncol, sizeof *ps->names);
    ps->numeric = calloc((size_t)ncol, sizeof *ps->numeric);
    if (!ps->names || !ps->numeric) return ps->failed = 1;
    ps->ncol = ncol;
    for (int c = 0; c < ncol; c++) {
        if (!(ps->names[c] = str_dup(names[c]))) return ps->failed = 1;
        ps->numeric[c] = 1;
    }
    if (ps->format == QUERY_FMT_CSV) {
        for (int c = 0; c < ncol; c++) {
            if (c) fputc(',', ps->out);
            csv_write_field(ps->out, names[c]);
        }
        fputc('\n', ps->out);
    }
    return 0;
}

static int print_on_row(void *ud, int ncol, const char *const *names, const store_value *vals) {
    print_state *ps = ud;
    (void)names;
    FILE *out = ps->out;
    if (ps->format == QUERY_FMT_CSV) {
        for (int c = 0; c < ncol; c++) {
            if (c) fputc(',', out);
            if (vals[c].type == STORE_NULL) continue;
            char *t = value_text(&vals[c], 1);
            if (!t) return ps->failed = 1;
            csv_write_field(out, t);
            free(t);
        }
        fputc('\n', out);
        return 0;
    }
    if (ps->format == QUERY_FMT_JSON) {
        fputs(ps->n_json++ ? ",\n  {" : "[\n  {", out);
        for (int c = 0; c < ncol; c++) {
            const store_value *v = &vals[c];
            if (c) fputs(", ", out);
            json_write_string(out, ps->names[c], strlen(ps->names[c]));
            fputs(": ", out);
            if (v->type == STORE_NULL || (v->type == STORE_REAL && !isfinite(v->d))) {
                fputs("null", out); /* JSON has no NaN or infinity */
                continue;
            }
            char *t = value_text(v, 1);
            if (!t) return ps->failed = 1;
            if (v->type == STORE_INT || v->type == STORE_REAL)
                fputs(t, out);
            else
                json_write_string(out, t, v->type == STORE_TEXT ? (size_t)v->len : strlen(t));
            free(t);
        }
        fputc('}', out);
        return 0;
    }
    if (ps->n_rows == ps->cap_rows) {
        size_t cap = ps->cap_rows ? 2 * ps->cap_rows : 64;
        char **cells = realloc(ps->cells, cap * (size_t)ncol * sizeof *cells);
        if (!cells) return ps->failed = 1;
        ps->cells = cells;
        ps->cap_rows = cap;
    }
    char **row = ps->cells + ps->n_rows * (size_t)ncol;
    for (int c = 0; c < ncol; c++)
        row[c] = NULL;
    ps->n_rows++; /* counted before filling so that print_state_reset frees a partial row */
    for (int c = 0; c < ncol; c++) {
        if (!(row[c] = table_cell(&vals[c]))) return ps->failed = 1;
        if (vals[c].type != STORE_NULL && vals[c].type != STORE_INT && vals[c].type != STORE_REAL)
            ps->numeric[c] = 0;
    }
    return 0;
}

int query_print(store *s, const char *sql, int format, FILE *out, error *e) {
    HDLM_ASSERT(s && sql && out);
    HDLM_ASSERT(format == QUERY_FMT_TABLE || format == QUERY_FMT_CSV || format == QUERY_FMT_JSON);
    print_state ps = {.format = format, .out = out};
    int status = store_query_cols(s, sql, print_on_columns, print_on_row, &ps, e);
    if (format == QUERY_FMT_TABLE) print_table_flush(&ps);
    if (format == QUERY_FMT_JSON) fputs(ps.n_json ? "\n]\n" : "[]\n", out);
    print_state_reset(&ps);
    if (status == HDLM_OK && ps.failed)
        status =
            error_set(e, HDLM_ENOMEM, "%s: out of memory printing the query result", store_path(s));
    if (status == HDLM_OK && ferror(out))
        status = error_set(e, HDLM_EIO, "%s: writing the query result failed", store_path(s));
    return status;
}
