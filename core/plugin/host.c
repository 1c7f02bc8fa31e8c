/* The plugin host: dlopen, descriptor checks, the registry, option sets and instances.
 * Every descriptor of a file is checked before any is registered, so a refused file leaves the
 * registry exactly as it was. Loading the same file (same real path) twice is a no-op rather than
 * a name clash with itself, so a folder listed twice in the search path is harmless.
 * `refusals` buffers are appended to (the caller starts them as ""). Not thread-safe: the
 * registry is built once at start-up, then only read. */
#include "plugin/host.h"

#include "base/json.h"
#include "base/log.h"
#include "base/paths.h"
#include "base/rng.h"
#include "base/sha256.h"
#include "base/text.h"
#include "nn/layers.h"
#include "plugin/guard.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* LeakSanitizer builds: a crashed instance's state is abandoned on purpose (below) */
#if defined(__SANITIZE_ADDRESS__)
#define HOST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOST_LSAN 1
#endif
#endif
#ifdef HOST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

enum {
    MAX_DESCRIPTORS = 64, /* per file; more means a missing NULL terminator */
    MAX_OPTIONS = 256,    /* per descriptor; same reason */
    MAX_NAME = 64,        /* plugin and option names */
};

/* ------------------------------------------------------------------------------------------- */
/* small helpers                                                                               */

/* Appends "msg\n" to a caller's NUL-terminated buffer, truncating silently when full. */
static void append_line(char *buf, size_t cap, const char *msg) {
    if (!buf || cap == 0) return;
    size_t len = strnlen(buf, cap);
    if (len >= cap - 1) return;
    snprintf(buf + len, cap - len, "%s\n", msg);
}

/* Shortest text that reads back as exactly v; integral values print without an exponent. */
static void format_number(double v, char *buf, size_t cap) {
    if (isnan(v)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e21) { /* like JavaScript: digits up to 1e21 */
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static int name_is_valid(const char *s) {
    if (!s || !*s) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= MAX_NAME || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ------------------------------------------------------------------------------------------- */
/* option sets                                                                                 */

enum { VAL_NUMBER = 1, VAL_STRING = 2, VAL_BOOL = 3 };

typedef struct opt_item {
    char *key;
    int type;   /* VAL_* */
    double num; /* VAL_NUMBER, or VAL_BOOL as 0/1 */
    char *str;  /* VAL_STRING */
} opt_item;

struct plugin_opts {
    opt_item *items; /* (n) in insertion order; declaration order after validate */
    size_t n, cap;
};

static void opt_item_clear(opt_item *it) {
    free(it->key);
    free(it->str);
    memset(it, 0, sizeof *it);
}

static opt_item *opts_find(const plugin_opts *o, const char *key) {
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->items[i].key, key)) return &o->items[i];
    return NULL;
}

plugin_opts *plugin_opts_new(void) {
    return calloc(1, sizeof(plugin_opts));
}

void plugin_opts_free(plugin_opts *o) {
    if (!o) return;
    for (size_t i = 0; i < o->n; i++)
        opt_item_clear(&o->items[i]);
    free(o->items);
    free(o);
}

/* Stores a value under key (copying both), replacing an earlier value of that key. */
static int opts_put(plugin_opts *o, const char *key, int type, double num, const char *str) {
    HDLM_ASSERT(o && key);
    char *s = NULL;
    if (type == VAL_STRING && !(s = strdup(str ? str : ""))) return HDLM_ENOMEM;
    opt_item *it = opts_find(o, key);
    if (!it) {
        if (o->n == o->cap) {
            size_t cap = o->cap ? 2 * o->cap : 8;
            opt_item *p = realloc(o->items, cap * sizeof *p);
            if (!p) {
                free(s);
                return HDLM_ENOMEM;
            }
            o->items = p;
            o->cap = cap;
        }
        char *k = strdup(key);
        if (!k) {
            free(s);
            return HDLM_ENOMEM;
        }
        it = &o->items[o->n++];
        memset(it, 0, sizeof *it);
        it->key = k;
    }
    free(it->str);
    it->type = type;
    it->num = num;
    it->str = s;
    return HDLM_OK;
}

int plugin_opts_set_number(plugin_opts *o, const char *key, double v) {
    return opts_put(o, key, VAL_NUMBER, v, NULL);
}

int plugin_opts_set_string(plugin_opts *o, const char *key, const char *v) {
    return opts_put(o, key, VAL_STRING, 0, v);
}

int plugin_opts_set_bool(plugin_opts *o, const char *key, int v) {
    return opts_put(o, key, VAL_BOOL, v ? 1 : 0, NULL);
}

/* Whole-string finite number (strtod syntax); 0 when text is anything else. */
static int parse_number(const char *text, double *out) {
    if (!text || !*text) return 0;
    char *end;
    double v = strtod(text, &end);
    if (*end != '\0' || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

int plugin_opts_set_text(plugin_opts *o, const char *key, const char *text) {
    double v;
    if (parse_number(text, &v)) return plugin_opts_set_number(o, key, v);
    if (text && !strcmp(text, "true")) return plugin_opts_set_bool(o, key, 1);
    if (text && !strcmp(text, "false")) return plugin_opts_set_bool(o, key, 0);
    return plugin_opts_set_string(o, key, text);
}

size_t plugin_opts_count(const plugin_opts *o) {
    return o ? o->n : 0;
}

const char *plugin_opts_key(const plugin_opts *o, size_t i) {
    return o && i < o->n ? o->items[i].key : NULL;
}

static const char *opt_type_name(uint32_t type) {
    switch (type) {
    case HDLM_OPT_NUMBER:
        return "number";
    case HDLM_OPT_INTEGER:
        return "integer";
    case HDLM_OPT_STRING:
        return "string";
    case HDLM_OPT_BOOL:
        return "bool";
    default:
        return "unknown";
    }
}

/* "number 2.5", "bool true", "string 'abc'" (with_type) or just "2.5" / "true" / "'abc'". */
static void value_text(const opt_item *v, int with_type, char *buf, size_t cap) {
    char num[64];
    const char *type = v->type == VAL_NUMBER ? "number "
                       : v->type == VAL_BOOL ? "bool "
                                             : "string ";
    if (!with_type) type = "";
    if (v->type == VAL_STRING) {
        snprintf(buf, cap, "%s'%.200s'", type, v->str);
    } else if (v->type == VAL_BOOL) {
        snprintf(buf, cap, "%s%s", type, v->num != 0 ? "true" : "false");
    } else {
        format_number(v->num, num, sizeof num);
        snprintf(buf, cap, "%s%s", type, num);
    }
}

/* Is `s` one of the "|"-separated values in `allow`? */
static int allow_contains(const char *allow, const char *s) {
    size_t len = strlen(s);
    for (const char *p = allow;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, s, n)) return 1;
        if (!bar) return 0;
        p = bar + 1;
    }
}

/* Checks value v against declaration d and writes the resolved value (an owned copy) to out.
 * Messages read "<what>: option '<name>' must be ..., got ...". */
static int opt_resolve(const hdlm_option *d, const opt_item *v, const char *what, opt_item *out,
                       error *e) {
    char got[256];
    value_text(v, 1, got, sizeof got);
    memset(out, 0, sizeof *out);
    int type = VAL_NUMBER;
    double num = v->num;
    switch (d->type) {
    case HDLM_OPT_NUMBER:
        if (v->type != VAL_NUMBER)
            return error_set(e, HDLM_EINVAL, "%s: option '%s' must be a number, got %s", what,
                             d->name, got);
        if (!isfinite(v->num))
            return error_set(e, HDLM_EINVAL, "%s: option '%s' must be a finite number, got %s",
                             what, d->name, got);
        break;
    case HDLM_OPT_INTEGER:
        if (v->type != VAL_NUMBER)
            return error_set(e, HDLM_EINVAL, "%s: option '%s' must be an integer, got %s", what,
                             d->name, got);
        /* [-2^63, 2^63): every double in this range converts to int64 exactly */
        if (!isfinite(v->num) || v->num != floor(v->num) || v->num < -0x1p63 || v->num >= 0x1p63) {
            value_text(v, 0, got, sizeof got);
            return error_set(e, HDLM_EINVAL, "%s: option '%s' must be an integer, got %s", what,
                             d->name, got);
        }
        break;
    case HDLM_OPT_BOOL:
        if (!(v->type == VAL_BOOL || (v->type == VAL_NUMBER && (v->num == 0 || v->num == 1))))
            return error_set(e, HDLM_EINVAL,
                             "%s: option '%s' must be a bool (true/false or 0/1), got %s", what,
                             d->name, got);
        type = VAL_BOOL;
        num = v->num != 0;
        break;
    case HDLM_OPT_STRING:
        if (v->type != VAL_STRING)
            return error_set(e, HDLM_EINVAL, "%s: option '%s' must be a string, got %s", what,
                             d->name, got);
        if (d->allow && !allow_contains(d->allow, v->str)) {
            value_text(v, 0, got, sizeof got);
            return error_set(e, HDLM_EINVAL, "%s: option '%s' must be one of %s, got %s", what,
                             d->name, d->allow, got);
        }
        type = VAL_STRING;
        break;
    default:
        return error_set(e, HDLM_EPLUGIN, "%s: option '%s' has unknown type %u", what, d->name,
                         d->type);
    }
    out->key = strdup(d->name);
    out->type = type;
    out->num = type == VAL_STRING ? 0 : num;
    out->str = type == VAL_STRING ? strdup(v->str) : NULL;
    if (!out->key || (type == VAL_STRING && !out->str)) {
        opt_item_clear(out);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory resolving option '%s'", what, d->name);
    }
    return HDLM_OK;
}

/* The declared default as a value (not yet checked against the declaration); 0 if unparsable. */
static int opt_default_value(const hdlm_option *d, opt_item *v) {
    memset(v, 0, sizeof *v);
    if (!d->def) return 0;
    switch (d->type) {
    case HDLM_OPT_NUMBER:
    case HDLM_OPT_INTEGER:
        v->type = VAL_NUMBER;
        return parse_number(d->def, &v->num);
    case HDLM_OPT_BOOL:
        v->type = VAL_BOOL;
        if (!strcmp(d->def, "true") || !strcmp(d->def, "1"))
            v->num = 1;
        else if (!strcmp(d->def, "false") || !strcmp(d->def, "0"))
            v->num = 0;
        else
            return 0;
        return 1;
    case HDLM_OPT_STRING:
        v->type = VAL_STRING;
        v->str = (char *)d->def;
        return 1;
    default:
        return 0;
    }
}

static size_t decl_count(const hdlm_option *decl) {
    size_t n = 0;
    while (decl && decl[n].name)
        n++;
    return n;
}

int plugin_opts_validate(plugin_opts *o, const hdlm_option *decl, const char *what, error *e) {
    HDLM_ASSERT(o && what);
    size_t nd = decl_count(decl);

    /* unknown keys first: a typo is the likeliest mistake and the most useful message */
    for (size_t i = 0; i < o->n; i++) {
        int known = 0;
        for (size_t j = 0; j < nd && !known; j++)
            known = !strcmp(o->items[i].key, decl[j].name);
        if (known) continue;
        if (nd == 0)
            return error_set(e, HDLM_EINVAL,
                             "%s: unknown option '%s' (this plugin takes no options)", what,
                             o->items[i].key);
        const char *names[MAX_OPTIONS];
        char allowed[512] = "";
        size_t len = 0;
        for (size_t j = 0; j < nd && j < MAX_OPTIONS; j++) {
            names[j] = decl[j].name;
            if (len < sizeof allowed)
                len += (size_t)snprintf(allowed + len, sizeof allowed - len, "%s%s", j ? ", " : "",
                                        decl[j].name);
        }
        const char *near =
            text_closest(o->items[i].key, names, nd < MAX_OPTIONS ? nd : MAX_OPTIONS);
        if (near)
            return error_set(e, HDLM_EINVAL,
                             "%s: unknown option '%s'; did you mean '%s'? (allowed: %s)", what,
                             o->items[i].key, near, allowed);
        return error_set(e, HDLM_EINVAL, "%s: unknown option '%s' (allowed: %s)", what,
                         o->items[i].key, allowed);
    }

    /* resolve in declaration order into a fresh list; swap only when everything checked out */
    opt_item *res = calloc(nd ? nd : 1, sizeof *res);
    if (!res) return error_set(e, HDLM_ENOMEM, "%s: out of memory validating options", what);
    int rc = HDLM_OK;
    for (size_t j = 0; j < nd && rc == HDLM_OK; j++) {
        const opt_item *given = opts_find(o, decl[j].name);
        opt_item def;
        if (given) {
            rc = opt_resolve(&decl[j], given, what, &res[j], e);
        } else if (!decl[j].def) {
            rc = error_set(e, HDLM_EINVAL, "%s: missing required option '%s' (%s)", what,
                           decl[j].name, opt_type_name(decl[j].type));
        } else if (!opt_default_value(&decl[j], &def)) {
            rc = error_set(e, HDLM_EPLUGIN, "%s: default '%s' of option '%s' is not a valid %s",
                           what, decl[j].def, decl[j].name, opt_type_name(decl[j].type));
        } else {
            rc = opt_resolve(&decl[j], &def, what, &res[j], e);
            if (rc != HDLM_OK && rc != HDLM_ENOMEM) {
                char msg[sizeof e->msg];
                snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
                rc = error_set(e, HDLM_EPLUGIN, "%s (the plugin's own default)", msg);
            }
        }
    }
    if (rc != HDLM_OK) {
        for (size_t j = 0; j < nd; j++)
            opt_item_clear(&res[j]);
        free(res);
        return rc;
    }
    for (size_t i = 0; i < o->n; i++)
        opt_item_clear(&o->items[i]);
    free(o->items);
    o->items = res;
    o->n = nd;
    o->cap = nd ? nd : 1;
    return HDLM_OK;
}

char *plugin_opts_json(const plugin_opts *o) {
    json_buf b = {0};
    json_buf_raw(&b, "{");
    for (size_t i = 0; o && i < o->n; i++) {
        const opt_item *it = &o->items[i];
        if (i) json_buf_raw(&b, ", ");
        json_buf_str(&b, it->key);
        json_buf_raw(&b, ": ");
        if (it->type == VAL_STRING)
            json_buf_str(&b, it->str);
        else if (it->type == VAL_BOOL)
            json_buf_raw(&b, it->num != 0 ? "true" : "false");
        else if (isfinite(it->num) && it->num == floor(it->num) && fabs(it->num) < 1e21) {
            char num[32]; /* integral values in full digits, as the store has always had them */
            snprintf(num, sizeof num, "%.0f", it->num);
            json_buf_raw(&b, num);
        } else /* validated sets hold only finite numbers; json_buf_num writes null otherwise */
            json_buf_num(&b, it->num);
    }
    json_buf_raw(&b, "}");
    if (b.failed) {
        json_buf_free(&b);
        return NULL;
    }
    return b.data;
}

int plugin_opts_number(const void *opts, const char *key, double *out) {
    const plugin_opts *o = opts;
    if (!o || !key || !out) return HDLM_EINVAL;
    const opt_item *it = opts_find(o, key);
    if (!it || it->type == VAL_STRING) return HDLM_EINVAL;
    *out = it->num;
    return HDLM_OK;
}

int plugin_opts_string(const void *opts, const char *key, const char **out) {
    const plugin_opts *o = opts;
    if (!o || !key || !out) return HDLM_EINVAL;
    const opt_item *it = opts_find(o, key);
    if (!it || it->type != VAL_STRING) return HDLM_EINVAL;
    *out = it->str;
    return HDLM_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* registry                                                                                    */

typedef struct plugin_lib {
    void *handle;
    char *file;    /* realpath */
    char hash[65]; /* sha256 hex of the file at load time */
} plugin_lib;

struct plugin_registry {
    plugin_lib **libs; /* (n_libs) in load order; each allocated alone so pointers stay valid */
    size_t n_libs, cap_libs;
    plugin_entry **entries; /* (n) in load order; same reason */
    size_t n, cap;
    char searched[2048];  /* folders searched, ", "-separated, for "no plugins found" messages */
    unsigned n_instances; /* instances made so far: numbers their labels */
};

const char *plugin_kind_name(uint32_t kind) {
    switch (kind) {
    case HDLM_KIND_NOISE:
        return "noise";
    case HDLM_KIND_SCHEDULE:
        return "schedule";
    case HDLM_KIND_SAMPLER:
        return "sampler";
    default:
        return "unknown";
    }
}

int plugin_kind_from_name(const char *name) {
    if (!name) return 0;
    if (!strcmp(name, "noise")) return HDLM_KIND_NOISE;
    if (!strcmp(name, "schedule")) return HDLM_KIND_SCHEDULE;
    if (!strcmp(name, "sampler")) return HDLM_KIND_SAMPLER;
    return 0;
}

int plugin_registry_open(plugin_registry **out, error *e) {
    HDLM_ASSERT(out);
    *out = calloc(1, sizeof **out);
    if (!*out) return error_set(e, HDLM_ENOMEM, "plugin registry: out of memory");
    return HDLM_OK;
}

void plugin_registry_close(plugin_registry *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        free(r->entries[i]);
    free(r->entries);
    for (size_t i = r->n_libs; i-- > 0;) {
        dlclose(r->libs[i]->handle);
        free(r->libs[i]->file);
        free(r->libs[i]);
    }
    free(r->libs);
    free(r);
}

size_t plugin_registry_count(const plugin_registry *r) {
    return r ? r->n : 0;
}

const plugin_entry *plugin_registry_at(const plugin_registry *r, size_t i) {
    return r && i < r->n ? r->entries[i] : NULL;
}

const plugin_entry *plugin_registry_find(const plugin_registry *r, uint32_t kind,
                                         const char *name) {
    if (!r || !name) return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (r->entries[i]->desc->kind == kind && !strcmp(r->entries[i]->desc->name, name))
            return r->entries[i];
    return NULL;
}

/* Sorted names of one kind; caller frees the array (not the strings). */
static const char **names_of_kind(const plugin_registry *r, uint32_t kind, size_t *n_out) {
    *n_out = 0;
    const char **names = malloc(sizeof(char *) * (r && r->n ? r->n : 1));
    if (!names) return NULL;
    for (size_t i = 0; r && i < r->n; i++)
        if (r->entries[i]->desc->kind == kind) names[(*n_out)++] = r->entries[i]->desc->name;
    qsort(names, *n_out, sizeof *names, cmp_str_ptr);
    return names;
}

void plugin_registry_names(const plugin_registry *r, uint32_t kind, char *buf, size_t cap) {
    if (!buf || cap == 0) return;
    buf[0] = '\0';
    size_t n, len = 0;
    const char **names = names_of_kind(r, kind, &n);
    if (!names || n == 0) snprintf(buf, cap, "(none)");
    for (size_t i = 0; names && i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", names[i]);
    free(names);
}

static void searched_add(plugin_registry *r, const char *dir) {
    size_t len = strlen(r->searched);
    if (len + 1 < sizeof r->searched)
        snprintf(r->searched + len, sizeof r->searched - len, "%s%s", len ? ", " : "", dir);
}

static size_t ops_size_of_kind(uint32_t kind) {
    switch (kind) {
    case HDLM_KIND_NOISE:
        return HDLM_NOISE_OPS_MIN_SIZE;
    case HDLM_KIND_SCHEDULE:
        return HDLM_SCHEDULE_OPS_MIN_SIZE;
    case HDLM_KIND_SAMPLER:
        return HDLM_SAMPLER_OPS_MIN_SIZE;
    default:
        return 0;
    }
}

/* Name of the first required ops function that is NULL, or NULL when all are there. */
static const char *ops_missing_function(uint32_t kind, const void *ops) {
    const hdlm_ops_head *h = ops;
    if (!h->info) return "info";
    if (kind == HDLM_KIND_NOISE) {
        const hdlm_noise_ops *o = ops;
        if (!o->corrupt) return "corrupt";
        if (!o->loss) return "loss";
        if (!o->reverse) return "reverse";
        if (!o->limit) return "limit";
        if (!o->marginal)
            return "marginal"; /* conditioning, bound, bound_corrupt, prior: optional */
    } else if (kind == HDLM_KIND_SCHEDULE) {
        const hdlm_schedule_ops *o = ops;
        if (!o->n_levels) return "n_levels";
        if (!o->n_steps) return "n_steps";
        if (!o->levels) return "levels";
        if (!o->growth) return "growth";
    } else if (kind == HDLM_KIND_SAMPLER) {
        const hdlm_sampler_ops *o = ops;
        if (!o->step) return "step";
    }
    return NULL;
}

/* The declared options: names valid and unique, types known, defaults parse and are allowed. */
static int check_options(const char *file, const hdlm_plugin *d, error *e) {
    const hdlm_option *opt = d->options;
    for (size_t i = 0; opt && opt[i].name; i++) {
        const hdlm_option *o = &opt[i];
        if (i >= MAX_OPTIONS)
            return error_set(e, HDLM_EPLUGIN,
                             "%s: plugin '%s' declares more than %d options (missing {NULL} "
                             "terminator?)",
                             file, d->name, MAX_OPTIONS);
        if (!name_is_valid(o->name))
            return error_set(e, HDLM_EPLUGIN,
                             "%s: plugin '%s' option '%.64s' has an invalid name (expected 1-%d "
                             "characters from a-z, 0-9 and _)",
                             file, d->name, o->name, MAX_NAME);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(opt[j].name, o->name))
                return error_set(e, HDLM_EPLUGIN, "%s: plugin '%s' declares option '%s' twice",
                                 file, d->name, o->name);
        if (o->type < HDLM_OPT_NUMBER || o->type > HDLM_OPT_BOOL)
            return error_set(e, HDLM_EPLUGIN,
                             "%s: plugin '%s' option '%s' has unknown type %u (expected 1-4)", file,
                             d->name, o->name, o->type);
        if (o->allow && o->type != HDLM_OPT_STRING)
            return error_set(e, HDLM_EPLUGIN,
                             "%s: plugin '%s' option '%s' is a %s but has an allow list (only "
                             "strings may)",
                             file, d->name, o->name, opt_type_name(o->type));
        if (!o->def) continue; /* required */
        opt_item v, resolved;
        error sub = {0};
        if (!opt_default_value(o, &v) || opt_resolve(o, &v, d->name, &resolved, &sub) != HDLM_OK)
            return error_set(e, HDLM_EPLUGIN,
                             "%s: plugin '%s' option '%s' has default '%s', which is not a valid "
                             "%s%s%s",
                             file, d->name, o->name, o->def, opt_type_name(o->type),
                             o->allow ? " among " : "", o->allow ? o->allow : "");
        opt_item_clear(&resolved);
    }
    return HDLM_OK;
}

/* Everything about descriptor descs[i] of `file` that can be checked without calling it. */
static int check_descriptor(const plugin_registry *r, const char *file, const hdlm_plugin **descs,
                            size_t i, error *e) {
    const hdlm_plugin *d = descs[i];
    /* abi_version and struct_size are the only fields safe to read before these two checks */
    if (d->abi_version != HDLM_ABI_VERSION)
        return error_set(e, HDLM_EPLUGIN,
                         "%s: plugin ABI version %u, this hdlm expects %u; rebuild the plugin "
                         "against this hdlm's hdlm/plugin.h (%s; docs/writing-plugins.md \"ABI "
                         "versions\")",
                         file, d->abi_version, HDLM_ABI_VERSION,
                         d->abi_version < HDLM_ABI_VERSION
                             ? "ABI 2 moved flags to the info op and create to hdlm_create_args"
                             : "this hdlm is older than the plugin");
    if (d->struct_size < HDLM_PLUGIN_MIN_SIZE) {
        char label[96];
        if (d->struct_size >= offsetof(hdlm_plugin, name) + sizeof d->name && d->name)
            snprintf(label, sizeof label, "'%.64s'", d->name);
        else
            snprintf(label, sizeof label, "#%zu", i);
        return error_set(e, HDLM_EPLUGIN,
                         "%s: descriptor %s is %u bytes, this hdlm needs at least %zu (built "
                         "against an older plugin.h?)",
                         file, label, d->struct_size, (size_t)HDLM_PLUGIN_MIN_SIZE);
    }
    if (!name_is_valid(d->name))
        return error_set(e, HDLM_EPLUGIN,
                         "%s: descriptor #%zu has an invalid name '%.64s' (expected 1-%d "
                         "characters from a-z, 0-9 and _)",
                         file, i, d->name ? d->name : "(null)", MAX_NAME);
    if (!ops_size_of_kind(d->kind))
        return error_set(e, HDLM_EPLUGIN,
                         "%s: plugin '%s' has unknown kind %u (expected 1 noise, 2 schedule or 3 "
                         "sampler)",
                         file, d->name, d->kind);
    if (!d->version || !*d->version)
        return error_set(e, HDLM_EPLUGIN, "%s: plugin '%s' has no version string", file, d->name);
    if (!d->create || !d->destroy || !d->ops)
        return error_set(e, HDLM_EPLUGIN, "%s: plugin '%s' has no %s", file, d->name,
                         !d->create    ? "create function"
                         : !d->destroy ? "destroy function"
                                       : "ops table");
    const hdlm_ops_head *head = d->ops; /* every ops struct starts with its head */
    uint32_t ops_size = head->struct_size;
    if (ops_size < ops_size_of_kind(d->kind))
        return error_set(e, HDLM_EPLUGIN,
                         "%s: %s ops table of '%s' is %u bytes, this hdlm needs at least %zu "
                         "(built against an older plugin.h?)",
                         file, plugin_kind_name(d->kind), d->name, ops_size,
                         ops_size_of_kind(d->kind));
    if (head->reserved != 0)
        return error_set(e, HDLM_EPLUGIN, "%s: %s ops of '%s' have head.reserved = %u, expected 0",
                         file, plugin_kind_name(d->kind), d->name, head->reserved);
    const char *missing = ops_missing_function(d->kind, d->ops);
    if (missing)
        return error_set(e, HDLM_EPLUGIN, "%s: %s ops of '%s' have no '%s' function", file,
                         plugin_kind_name(d->kind), d->name, missing);
    int rc = check_options(file, d, e);
    if (rc) return rc;
    for (size_t j = 0; j < i; j++)
        if (descs[j]->kind == d->kind && !strcmp(descs[j]->name, d->name))
            return error_set(e, HDLM_EPLUGIN, "%s: plugin name '%s' (%s) is already provided by %s",
                             file, d->name, plugin_kind_name(d->kind), file);
    const plugin_entry *prev = plugin_registry_find(r, d->kind, d->name);
    if (prev)
        return error_set(e, HDLM_EPLUGIN, "%s: plugin name '%s' (%s) is already provided by %s",
                         file, d->name, plugin_kind_name(d->kind), prev->file);
    return HDLM_OK;
}

/* Adds lib and its descriptors; on failure nothing is added (and lib is not taken). */
static int registry_add(plugin_registry *r, plugin_lib *lib, const hdlm_plugin **descs, size_t nd,
                        error *e) {
    if (r->n_libs == r->cap_libs) {
        size_t cap = r->cap_libs ? 2 * r->cap_libs : 8;
        plugin_lib **p = realloc(r->libs, cap * sizeof *p);
        if (!p) return error_set(e, HDLM_ENOMEM, "plugin registry: out of memory");
        r->libs = p;
        r->cap_libs = cap;
    }
    if (r->n + nd > r->cap) {
        size_t cap = r->cap ? r->cap : 16;
        while (cap < r->n + nd)
            cap *= 2;
        plugin_entry **p = realloc(r->entries, cap * sizeof *p);
        if (!p) return error_set(e, HDLM_ENOMEM, "plugin registry: out of memory");
        r->entries = p;
        r->cap = cap;
    }
    plugin_entry *made[MAX_DESCRIPTORS];
    for (size_t i = 0; i < nd; i++) {
        made[i] = malloc(sizeof(plugin_entry));
        if (!made[i]) {
            while (i-- > 0)
                free(made[i]);
            return error_set(e, HDLM_ENOMEM, "plugin registry: out of memory");
        }
        made[i]->desc = descs[i];
        made[i]->file = lib->file;
        made[i]->hash = lib->hash;
    }
    for (size_t i = 0; i < nd; i++)
        r->entries[r->n++] = made[i];
    r->libs[r->n_libs++] = lib;
    return HDLM_OK;
}

/* Loads one file; *n_loaded receives the number of descriptors registered (0 when the file was
 * already loaded under the same real path). */
static int load_file_counted(plugin_registry *r, const char *path, int *n_loaded, error *e) {
    HDLM_ASSERT(r && path);
    *n_loaded = 0;
    char *abs = realpath(path, NULL);
    if (!abs) return error_set(e, HDLM_EPLUGIN, "%s: %s", path, strerror(errno));
    for (size_t i = 0; i < r->n_libs; i++)
        if (!strcmp(r->libs[i]->file, abs)) {
            free(abs);
            return HDLM_OK;
        }

    dlerror(); /* clear any stale message */
    void *h = dlopen(abs, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *msg = dlerror();
        if (!msg) msg = "dlopen failed";
        int rc = strstr(msg, path) || strstr(msg, abs)
                     ? error_set(e, HDLM_EPLUGIN, "%s", msg)
                     : error_set(e, HDLM_EPLUGIN, "%s: %s", path, msg);
        free(abs);
        return rc;
    }

    int rc = HDLM_OK;
    plugin_lib *lib = NULL;
    const hdlm_plugin *descs[MAX_DESCRIPTORS];
    size_t nd = 0;
    void *sym = dlsym(h, HDLM_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        rc = error_set(e, HDLM_EPLUGIN, "%s: no symbol %s (not an hdlm plugin?)", path,
                       HDLM_PLUGIN_ENTRY_SYMBOL);
        goto refuse;
    }
    hdlm_plugin_entry_fn entry = (hdlm_plugin_entry_fn)sym;
    for (const hdlm_plugin *d; (d = entry((uint32_t)nd)) != NULL;) {
        if (nd == MAX_DESCRIPTORS) {
            rc = error_set(e, HDLM_EPLUGIN,
                           "%s: more than %d descriptors (does %s return NULL past the end?)", path,
                           MAX_DESCRIPTORS, HDLM_PLUGIN_ENTRY_SYMBOL);
            goto refuse;
        }
        descs[nd++] = d;
    }
    if (nd == 0) {
        rc = error_set(e, HDLM_EPLUGIN, "%s: %s returned no descriptors", path,
                       HDLM_PLUGIN_ENTRY_SYMBOL);
        goto refuse;
    }
    for (size_t i = 0; i < nd; i++)
        if ((rc = check_descriptor(r, path, descs, i, e)) != HDLM_OK) goto refuse;

    lib = calloc(1, sizeof *lib);
    if (!lib) {
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
        goto refuse;
    }
    if ((rc = sha256_hex_file(abs, lib->hash, e)) != HDLM_OK) goto refuse;
    lib->handle = h;
    lib->file = abs;
    if ((rc = registry_add(r, lib, descs, nd, e)) != HDLM_OK) goto refuse;
    *n_loaded = (int)nd;
    return HDLM_OK;

refuse:
    free(lib);
    free(abs);
    dlclose(h);
    return rc;
}

int plugin_registry_load_file(plugin_registry *r, const char *path, error *e) {
    int n;
    return load_file_counted(r, path, &n, e);
}

/* missing_ok: a folder that does not exist counts as empty (the build's default folder). */
static int load_dir_impl(plugin_registry *r, const char *dir, char *refusals, size_t cap,
                         int missing_ok, error *e) {
    HDLM_ASSERT(r && dir);
    searched_add(r, dir);
    DIR *dp = opendir(dir);
    if (!dp) {
        if (missing_ok && errno == ENOENT) return 0;
        return error_set(e, HDLM_EIO, "%s: cannot read plugin folder: %s", dir, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, ncap = 0;
    int rc = HDLM_OK;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 3 || strcmp(de->d_name + len - 3, ".so") != 0) continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == ncap) {
            ncap = ncap ? 2 * ncap : 16;
            char **p = realloc(names, ncap * sizeof *p);
            if (!p) {
                rc = HDLM_ENOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = HDLM_ENOMEM;
            break;
        }
        n++;
    }
    closedir(dp);
    int total = 0;
    if (rc == HDLM_OK) {
        if (n > 1) /* load order must not depend on the fs; names is NULL in an empty folder */
            qsort(names, n, sizeof *names, cmp_str_ptr);
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            error le = {0};
            int loaded = 0;
            int lrc = load_file_counted(r, path, &loaded, &le);
            if (lrc == HDLM_ENOMEM) {
                rc = lrc;
                break;
            }
            if (lrc != HDLM_OK) append_line(refusals, cap, le.msg);
            total += loaded;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc != HDLM_OK) return error_set(e, rc, "%s: out of memory scanning plugin folder", dir);
    return total;
}

int plugin_registry_load_dir(plugin_registry *r, const char *dir, char *refusals, size_t cap,
                             error *e) {
    return load_dir_impl(r, dir, refusals, cap, 0, e);
}

int plugin_registry_load_default(plugin_registry *r, char *refusals, size_t cap, error *e) {
    /* the shipped plugins: next to the installed binary, or the build tree's (base/paths.h) */
    char dir[4096];
    int total = 0, rc = 0;
    error le = {0};
    if (paths_plugin_dir(dir, sizeof dir) == 0) {
        rc = load_dir_impl(r, dir, refusals, cap, 1, &le);
        if (rc == HDLM_ENOMEM) return error_set(e, rc, "%s", le.msg);
        if (rc < 0)
            append_line(refusals, cap, le.msg);
        else
            total += rc;
    }

    /* HDLM_PLUGIN_PATH: folders the user named, so a missing one is reported, not ignored */
    const char *path = getenv("HDLM_PLUGIN_PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len < 4096) {
            char one[4096];
            memcpy(one, path, len);
            one[len] = '\0';
            rc = load_dir_impl(r, one, refusals, cap, 0, &le);
            if (rc == HDLM_ENOMEM) return error_set(e, rc, "%s", le.msg);
            if (rc < 0)
                append_line(refusals, cap, le.msg);
            else
                total += rc;
        }
        if (!colon) break;
        path = colon + 1;
    }
    return total;
}

/* ------------------------------------------------------------------------------------------- */
/* instances                                                                                   */

static double softmax_ce_cb(const float *lg, int32_t n, int32_t y, double g, float *dl) {
    return crossentropy_row(dl, lg, n, y, g); /* the core's vectorised row (nn/layers.c) */
}

static const hdlm_host host_table = {
    .struct_size = sizeof(hdlm_host),
    .abi_version = HDLM_ABI_VERSION,
    .uniform = rng_uniform_cb,
    .random_u64 = rng_u64_cb,
    .opt_number = plugin_opts_number,
    .opt_string = plugin_opts_string,
    .log = log_plugin_cb,
    .log_ctx = NULL,
    .softmax_ce = softmax_ce_cb,
};

const hdlm_host *plugin_host_table(void) {
    return &host_table;
}

static int unknown_plugin_error(const plugin_registry *r, uint32_t kind, const char *name,
                                error *e) {
    const char *kname = plugin_kind_name(kind);
    size_t n;
    const char **names = names_of_kind(r, kind, &n);
    if (!names) return error_set(e, HDLM_ENOMEM, "out of memory");
    if (n == 0) {
        free(names);
        return error_set(e, HDLM_EINVAL,
                         "unknown %s plugin '%s'; no %s plugins are loaded (searched: %s)", kname,
                         name, kname, r && r->searched[0] ? r->searched : "nothing");
    }
    char known[768];
    plugin_registry_names(r, kind, known, sizeof known);
    const char *near = text_closest(name, names, n);
    int rc =
        near ? error_set(e, HDLM_EINVAL, "unknown %s plugin '%s'; known: %s (did you mean '%s'?)",
                         kname, name, known, near)
             : error_set(e, HDLM_EINVAL, "unknown %s plugin '%s'; known: %s", kname, name, known);
    free(names);
    return rc;
}

/* An instance: its own host table (log_ctx is the instance's label, so a plugin's log lines say
 * which instance wrote them), the plugin's self and ops, and the guarded ops table the core
 * calls. The core's `self` is the box: every guarded op unwraps it, runs the plugin's op under
 * the crash guard, and after a crash refuses every later call of the instance. */
typedef union any_ops {
    hdlm_ops_head head;
    hdlm_noise_ops noise;
    hdlm_schedule_ops sched;
    hdlm_sampler_ops sampler;
} any_ops;

typedef struct instance_box {
    plugin_instance pub; /* first: a plugin_instance * is a pointer to the box */
    hdlm_host host;
    char label[MAX_NAME + 24]; /* "absorbing#2" */
    void *self;                /* the plugin's own */
    any_ops real;    /* the plugin's ops, zero-extended past its struct_size: never read beyond */
    any_ops guarded; /* what the core calls: trampolines where the plugin has an op, else NULL */
    const char *crashed_in; /* op that crashed, NULL while healthy */
    int crash_sig;
} instance_box;

/* The message of a crash, into a plugin-style err buffer. */
static void crash_text(const instance_box *ib, char *buf, size_t cap, int earlier) {
    snprintf(buf, cap, "plugin %s (%s) crashed in op %s (%s)%s", ib->label, ib->pub.entry->file,
             ib->crashed_in, guard_signal_name(ib->crash_sig),
             earlier ? "; the instance is not used again" : "");
}

/* The process's fatal-crash hook (plugin_set_fatal_hook). */
static void (*fatal_hook)(void *ctx, const char *msg);
static void *fatal_ctx;

void plugin_set_fatal_hook(void (*fn)(void *ctx, const char *msg), void *ctx) {
    fatal_hook = fn;
    fatal_ctx = fn ? ctx : NULL;
}

/* Ops that cannot report a status (values, void) end the process after a crash: there is no
 * way to tell the caller, and going on with a made-up value would be worse. The hook runs first
 * (once: a crash inside it must not loop back here). */
_Noreturn static void crash_exit(const instance_box *ib) {
    char msg[1024];
    crash_text(ib, msg, sizeof msg, 0);
    fprintf(stderr, "hdlm: %s; the run cannot continue\n", msg);
    fflush(stderr);
    void (*hook)(void *, const char *) = fatal_hook;
    fatal_hook = NULL;
    if (hook) hook(fatal_ctx, msg);
    _exit(70);
}

/* Status ops: returns from the trampoline with HDLM_ECRASH and the message in err. */
#define GUARDED_STATUS(opname, call)                                                               \
    do {                                                                                           \
        instance_box *ib = h;                                                                      \
        if (ib->crashed_in) {                                                                      \
            crash_text(ib, err, err_cap, 1);                                                       \
            return HDLM_ECRASH;                                                                    \
        }                                                                                          \
        guard_frame f;                                                                             \
        if (GUARD_ENTER(f)) {                                                                      \
            ib->crashed_in = opname;                                                               \
            ib->crash_sig = f.sig;                                                                 \
            crash_text(ib, err, err_cap, 0);                                                       \
            return HDLM_ECRASH;                                                                    \
        }                                                                                          \
        int rc_ = (call);                                                                          \
        guard_pop(&f);                                                                             \
        return rc_;                                                                                \
    } while (0)

/* Value ops: a crash ends the process (crash_exit). */
#define GUARDED_VALUE(type, opname, call)                                                          \
    do {                                                                                           \
        instance_box *ib = h;                                                                      \
        if (ib->crashed_in) crash_exit(ib);                                                        \
        guard_frame f;                                                                             \
        if (GUARD_ENTER(f)) {                                                                      \
            ib->crashed_in = opname;                                                               \
            ib->crash_sig = f.sig;                                                                 \
            crash_exit(ib);                                                                        \
        }                                                                                          \
        type v_ = (call);                                                                          \
        guard_pop(&f);                                                                             \
        return v_;                                                                                 \
    } while (0)

static void g_info(void *h, hdlm_info *info) {
    instance_box *ib = h;
    if (ib->crashed_in) crash_exit(ib);
    guard_frame f;
    if (GUARD_ENTER(f)) {
        ib->crashed_in = "info";
        ib->crash_sig = f.sig;
        crash_exit(ib);
    }
    ib->real.head.info(ib->self, info);
    guard_pop(&f);
}

/* Instances answer from the facts read at creation: `info` MUST NOT change, and this keeps the
 * hot paths from calling into the plugin for it. */
static void g_info_cached(void *h, hdlm_info *info) {
    const instance_box *ib = h;
    uint32_t size = info->struct_size < sizeof(hdlm_info) ? info->struct_size : sizeof(hdlm_info);
    memcpy((char *)info + sizeof info->struct_size,
           (const char *)&ib->pub.info + sizeof info->struct_size, size - sizeof info->struct_size);
}

/* ---- schedule ---- */
static int32_t g_n_levels(void *h) {
    GUARDED_VALUE(int32_t, "n_levels", ib->real.sched.n_levels(ib->self));
}
static int64_t g_n_steps(void *h, int64_t L) {
    GUARDED_VALUE(int64_t, "n_steps", ib->real.sched.n_steps(ib->self, L));
}
static int g_levels(void *h, int64_t step, int64_t L, int32_t *level, int64_t *n_settled, char *err,
                    size_t err_cap) {
    GUARDED_STATUS("levels",
                   ib->real.sched.levels(ib->self, step, L, level, n_settled, err, err_cap));
}
static uint32_t g_growth(void *h, int64_t *block) {
    GUARDED_VALUE(uint32_t, "growth", ib->real.sched.growth(ib->self, block));
}

/* ---- noise ---- */
#define NOISE_BATCH_OP(fn, opname)                                                                 \
    static int fn(void *h, hdlm_noise_batch *b, char *err, size_t err_cap) {                       \
        GUARDED_STATUS(#opname, ib->real.noise.opname(ib->self, b, err, err_cap));                 \
    }
NOISE_BATCH_OP(g_corrupt, corrupt)
NOISE_BATCH_OP(g_loss, loss)
NOISE_BATCH_OP(g_reverse, reverse)
NOISE_BATCH_OP(g_limit, limit)
NOISE_BATCH_OP(g_bound, bound)
NOISE_BATCH_OP(g_bound_corrupt, bound_corrupt)
static int g_conditioning(void *h, size_t n, const float *t, float *sigma, char *err,
                          size_t err_cap) {
    GUARDED_STATUS("conditioning",
                   ib->real.noise.conditioning(ib->self, n, t, sigma, err, err_cap));
}
static int g_marginal(void *h, int32_t x0, double t, double *probs, char *err, size_t err_cap) {
    GUARDED_STATUS("marginal", ib->real.noise.marginal(ib->self, x0, t, probs, err, err_cap));
}
static int g_prior(void *h, int32_t x0, double *kl, char *err, size_t err_cap) {
    GUARDED_STATUS("prior", ib->real.noise.prior(ib->self, x0, kl, err, err_cap));
}

/* ---- sampler ---- */
static int g_step(void *h, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    GUARDED_STATUS("step", ib->real.sampler.step(ib->self, ctx, err, err_cap));
}

/* The guarded table: same layout as the plugin's, NULL where the plugin has NULL. extension is
 * passed through unguarded: it has no self and returns static data. */
static void guarded_ops_fill(instance_box *ib, uint32_t kind) {
    any_ops *g = &ib->guarded, *r = &ib->real;
    memset(g, 0, sizeof *g);
    g->head.info = g_info_cached;
    g->head.extension = r->head.extension;
    if (kind == HDLM_KIND_NOISE) {
        g->head.struct_size = sizeof(hdlm_noise_ops);
        g->noise.corrupt = g_corrupt;
        g->noise.loss = g_loss;
        g->noise.reverse = g_reverse;
        g->noise.limit = g_limit;
        g->noise.marginal = g_marginal;
        g->noise.conditioning = r->noise.conditioning ? g_conditioning : NULL;
        g->noise.bound = r->noise.bound ? g_bound : NULL;
        g->noise.bound_corrupt = r->noise.bound_corrupt ? g_bound_corrupt : NULL;
        g->noise.prior = r->noise.prior ? g_prior : NULL;
    } else if (kind == HDLM_KIND_SCHEDULE) {
        g->head.struct_size = sizeof(hdlm_schedule_ops);
        g->sched.n_levels = g_n_levels;
        g->sched.n_steps = g_n_steps;
        g->sched.levels = g_levels;
        g->sched.growth = g_growth;
    } else {
        g->head.struct_size = sizeof(hdlm_sampler_ops);
        g->sampler.step = g_step;
    }
}

/* Facts the core relies on, checked once. */
static int check_info(const instance_box *ib, uint32_t kind, int32_t vocab, error *e) {
    const hdlm_info *in = &ib->pub.info;
    const char *who = ib->label;
    const uint32_t known = HDLM_INFO_CONTINUOUS | HDLM_INFO_SCORE | HDLM_INFO_CONDITIONED |
                           HDLM_INFO_INPUT_MIX | HDLM_INFO_CONCURRENT;
    if (in->flags & ~known)
        return error_set(e, HDLM_EPLUGIN, "%s: info reports unknown flags 0x%x", who,
                         in->flags & ~known);
    if (kind == HDLM_KIND_NOISE) {
        if (in->n_extra < 0 || in->n_extra > 1024)
            return error_set(e, HDLM_EPLUGIN, "%s: info reports n_extra = %d, expected 0..1024",
                             who, in->n_extra);
        if (in->mask_id != -1 && (in->mask_id < vocab || in->mask_id >= vocab + in->n_extra))
            return error_set(e, HDLM_EPLUGIN,
                             "%s: info reports mask_id = %d, expected -1 or an extra symbol in "
                             "%d..%d",
                             who, in->mask_id, vocab, vocab + in->n_extra - 1);
        if ((in->flags & HDLM_INFO_CONDITIONED) && !ib->real.noise.conditioning)
            return error_set(e, HDLM_EPLUGIN,
                             "%s: info reports a conditioned process but the ops have no "
                             "conditioning function",
                             who);
        if ((in->flags & HDLM_INFO_INPUT_MIX) && !(isfinite(in->input_mix) && in->input_mix >= 0))
            return error_set(e, HDLM_EPLUGIN, "%s: info reports input_mix = %g, expected >= 0", who,
                             in->input_mix);
    }
    if (kind == HDLM_KIND_SAMPLER && (in->needs & ~(HDLM_INFO_SCORE | HDLM_INFO_CONDITIONED)))
        return error_set(e, HDLM_EPLUGIN, "%s: info reports needs 0x%x (only SCORE, CONDITIONED)",
                         who, in->needs);
    return HDLM_OK;
}

/* create under the guard (its own frame: sigsetjmp clobbers the caller's locals). */
static int guarded_create(instance_box *box, const hdlm_create_args *ca, void **self, char *err,
                          size_t err_cap) {
    guard_frame f;
    if (GUARD_ENTER(f)) {
        box->crashed_in = "create";
        box->crash_sig = f.sig;
        crash_text(box, err, err_cap, 0);
        return HDLM_ECRASH;
    }
    int rc = box->pub.entry->desc->create(ca, self, err, err_cap);
    guard_pop(&f);
    return rc;
}

int plugin_instance_create(plugin_registry *r, uint32_t kind, const char *name, plugin_opts *opts,
                           const plugin_create_args *args, plugin_instance **out, error *e) {
    HDLM_ASSERT(out && name);
    *out = NULL;
    if (!opts && !(opts = plugin_opts_new()))
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", name);
    const plugin_entry *en = plugin_registry_find(r, kind, name);
    if (!en) {
        plugin_opts_free(opts);
        return unknown_plugin_error(r, kind, name, e);
    }
    plugin_create_args a = {.vocab = 0, .n_extra = -1, .mask_id = -1};
    if (args) a = *args;
    /* a noise's V may also come as the option "vocab" (option sets written as text: the CLI's
     * `plugins check`, tests); it is taken out before the options are checked */
    opt_item *vit = kind == HDLM_KIND_NOISE ? opts_find(opts, "vocab") : NULL;
    if (vit) {
        double v = 0;
        /* !(in range) rather than (out of range): a NaN fails every comparison, so it would slip
         * through to the int cast, which is undefined for NaN (found by fuzz_plugin_opts) */
        if (a.vocab <= 0 && plugin_opts_number(opts, "vocab", &v) == HDLM_OK && v >= 2 &&
            v <= (1 << 24) && v == floor(v))
            a.vocab = (int32_t)v;
        else if (a.vocab <= 0)
            a.vocab = -1; /* present but not a valid count */
        opt_item_clear(vit);
        *vit = opts->items[--opts->n];
    }
    if (kind == HDLM_KIND_NOISE && !(a.vocab >= 2 && a.vocab <= (1 << 24))) {
        plugin_opts_free(opts);
        if (a.vocab == 0)
            return error_set(e, HDLM_EINVAL,
                             "%s: option 'vocab' (number of real tokens) must be an integer in "
                             "2..16777216, got none",
                             name);
        return error_set(e, HDLM_EINVAL,
                         "%s: option 'vocab' (number of real tokens) must be an integer in "
                         "2..16777216",
                         name);
    }
    int rc = plugin_opts_validate(opts, en->desc->options, name, e);
    /* recorded with the noise's options (runs.config), as ABI 1 hosts did; plugins do not read it
     */
    if (rc == HDLM_OK && kind == HDLM_KIND_NOISE)
        rc = plugin_opts_set_number(opts, "vocab", a.vocab);
    if (rc != HDLM_OK) {
        plugin_opts_free(opts);
        return rc;
    }
    instance_box *box = calloc(1, sizeof *box);
    if (!box) {
        plugin_opts_free(opts);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", name);
    }
    guard_install();
    snprintf(box->label, sizeof box->label, "%s#%u", en->desc->name, ++r->n_instances);
    box->host = host_table;
    box->host.log_ctx = box->label; /* log_plugin_cb only reads it */
    box->pub.entry = en;
    box->pub.opts = opts;
    box->pub.label = box->label;
    box->pub.vocab = a.vocab;
    const hdlm_ops_head *rh = en->desc->ops;
    memcpy(&box->real, en->desc->ops,
           rh->struct_size < sizeof box->real ? rh->struct_size : sizeof box->real);
    hdlm_create_args ca = {
        .struct_size = sizeof(hdlm_create_args),
        .host = &box->host,
        .opts = opts,
        .instance = box->label,
        .vocab = a.vocab,
        .n_extra = kind == HDLM_KIND_SAMPLER ? a.n_extra : -1,
        .mask_id = kind == HDLM_KIND_SAMPLER ? a.mask_id : -1,
    };
    char err[512] = "";
    void *self = NULL;
    rc = guarded_create(box, &ca, &self, err, sizeof err);
    err[sizeof err - 1] = '\0'; /* do not trust the plugin to terminate it */
    if (rc != HDLM_OK) {
        free(box);
        plugin_opts_free(opts);
        if (rc == HDLM_ECRASH) return error_set(e, HDLM_ECRASH, "%s", err);
        if (!err[0])
            snprintf(err, sizeof err, "create failed with status %d (%s) and no message", rc,
                     error_status_str(rc));
        return error_set(e, rc == HDLM_ENOMEM ? HDLM_ENOMEM : HDLM_EPLUGIN, "%s: %s", name, err);
    }
    box->self = self;
    hdlm_info *in = &box->pub.info;
    memset(in, 0, sizeof *in);
    in->struct_size = sizeof *in;
    in->mask_id = -1;
    g_info(box, in);
    in->struct_size = sizeof *in; /* whatever the plugin did to it */
    guarded_ops_fill(box, kind);
    box->pub.self = box;
    box->pub.ops = &box->guarded;
    box->pub.plugin_self = self;
    if ((rc = check_info(box, kind, a.vocab, e)) != HDLM_OK) {
        plugin_instance_destroy(&box->pub);
        return rc;
    }
    *out = &box->pub;
    return HDLM_OK;
}

const void *plugin_instance_extension(const plugin_instance *p, const char *id) {
    const instance_box *ib = (const instance_box *)p;
    if (!p || !id || !ib->real.head.extension) return NULL;
    return ib->real.head.extension(id);
}

const char *plugin_instance_crashed(const plugin_instance *p) {
    return p ? ((const instance_box *)p)->crashed_in : NULL;
}

void plugin_instance_destroy(plugin_instance *p) {
    if (!p) return;
    instance_box *ib = (instance_box *)p;
    /* a crashed instance's state is suspect: leak it rather than run more of its code */
    if (!ib->crashed_in) {
        guard_frame f;
        if (GUARD_ENTER(f)) {
            ib->crashed_in = "destroy";
            ib->crash_sig = f.sig;
            crash_exit(ib);
        }
        p->entry->desc->destroy(ib->self);
        guard_pop(&f);
    } else {
#ifdef HOST_LSAN
        if (ib->self) __lsan_ignore_object(ib->self); /* left behind by design, not a leak */
#endif
    }
    plugin_opts_free(p->opts);
    free(ib);
}

/* ------------------------------------------------------------------------------------------- */
/* listing                                                                                     */

static int cmp_entry(const void *a, const void *b) {
    const plugin_entry *x = *(const plugin_entry *const *)a, *y = *(const plugin_entry *const *)b;
    if (x->desc->kind != y->desc->kind) return x->desc->kind < y->desc->kind ? -1 : 1;
    return strcmp(x->desc->name, y->desc->name);
}

static void print_options(const hdlm_option *opt, FILE *out) {
    size_t w_name = 0, w_type = 0, w_def = 0, n = decl_count(opt);
    char def[128];
    if (n == 0) {
        fprintf(out, "    (no options)\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t ln = strlen(opt[i].name), lt = strlen(opt_type_name(opt[i].type));
        int ld = opt[i].def ? snprintf(def, sizeof def, "default %s", opt[i].def)
                            : snprintf(def, sizeof def, "required");
        w_name = ln > w_name ? ln : w_name;
        w_type = lt > w_type ? lt : w_type;
        w_def = (size_t)ld > w_def ? (size_t)ld : w_def;
    }
    for (size_t i = 0; i < n; i++) {
        if (opt[i].def)
            snprintf(def, sizeof def, "default %s", opt[i].def);
        else
            snprintf(def, sizeof def, "required");
        fprintf(out, "    %-*s  %-*s  %-*s", (int)w_name, opt[i].name, (int)w_type,
                opt_type_name(opt[i].type), (int)w_def, def);
        if (opt[i].help && *opt[i].help) fprintf(out, "  — %s", opt[i].help);
        if (opt[i].allow) fprintf(out, " (one of %s)", opt[i].allow);
        fputc('\n', out);
    }
}

void plugin_registry_print(const plugin_registry *r, FILE *out) {
    size_t n = plugin_registry_count(r);
    if (n == 0) {
        fprintf(out, "(no plugins found; searched: %s)\n",
                r && r->searched[0] ? r->searched : "nothing");
        return;
    }
    const plugin_entry **sorted = malloc(n * sizeof *sorted);
    if (!sorted) {
        fprintf(out, "(out of memory listing plugins)\n");
        return;
    }
    size_t w_name = strlen("name"), w_ver = strlen("version");
    for (size_t i = 0; i < n; i++) {
        sorted[i] = r->entries[i];
        size_t ln = strlen(sorted[i]->desc->name), lv = strlen(sorted[i]->desc->version);
        w_name = ln > w_name ? ln : w_name;
        w_ver = lv > w_ver ? lv : w_ver;
    }
    qsort(sorted, n, sizeof *sorted, cmp_entry);
    fprintf(out, "%zu plugin%s (plugin ABI %u)\n\n", n, n == 1 ? "" : "s", HDLM_ABI_VERSION);
    fprintf(out, "%-8s  %-*s  %-*s  %s\n", "kind", (int)w_name, "name", (int)w_ver, "version",
            "file");
    for (size_t i = 0; i < n; i++) {
        const hdlm_plugin *d = sorted[i]->desc;
        fprintf(out, "%s%-8s  %-*s  %-*s  %s\n", i ? "\n" : "", plugin_kind_name(d->kind),
                (int)w_name, d->name, (int)w_ver, d->version, sorted[i]->file);
        if (d->summary && *d->summary) fprintf(out, "    %s\n", d->summary);
        print_options(d->options, out);
    }
    free(sorted);
}
