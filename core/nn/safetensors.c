/* Safetensors writer (temp file + fsync + rename) and reader (whole file in memory, header parsed
 * with base/json and checked entry by entry, then the offsets checked to tile the data section).
 * Data is written and read as host memory, which is only the format's byte order on little-endian
 * machines; the build refuses big-endian targets rather than byte-swap. */
#include "nn/safetensors.h"

#include "base/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the format's byte order)"
#endif

struct st_file {
    char *path;
    unsigned char *buf; /* (size) the whole file */
    size_t size;
    json_value *header;
    const json_value *meta;    /* the "__metadata__" object or NULL */
    st_tensor *tensors;        /* (n) in header order */
    const st_tensor **by_name; /* (n) sorted by name, for st_find */
    int n;
};

static const struct {
    int dtype, size;
    const char *name;
} dtypes[] = {
    {ST_F32, 4, "F32"}, {ST_I32, 4, "I32"},   {ST_U8, 1, "U8"},   {ST_I64, 8, "I64"},
    {ST_F64, 8, "F64"}, {ST_BF16, 2, "BF16"}, {ST_F16, 2, "F16"},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

int st_dtype_size(int dtype) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == dtype) return dtypes[i].size;
    return 0;
}

const char *st_dtype_name(int dtype) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == dtype) return dtypes[i].name;
    return NULL;
}

static int dtype_from_name(const char *name) {
    for (int i = 0; name && i < N_DTYPES; i++)
        if (!strcmp(dtypes[i].name, name)) return dtypes[i].dtype;
    return 0;
}

/* "[3, 4]" into buf (truncated if it does not fit). */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* Bytes needed by dtype x product(shape), or -1 if that overflows int64. */
static int64_t tensor_bytes(int dtype, int ndim, const int64_t *shape) {
    int64_t total = st_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) return 0;
        if (total > INT64_MAX / shape[i]) return -1;
        total *= shape[i];
    }
    return total;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ------------------------------------------------------------------------------------ writing */

/* Checks what the caller passed; a refusal names the path and the tensor. */
static int check_write_args(const char *path, const st_tensor *t, int n, const char *const *mk,
                            const char *const *mv, int n_meta, error *e) {
    for (int i = 0; i < n; i++) {
        if (!memchr(t[i].name, '\0', sizeof t[i].name))
            return error_set(e, HDLM_EINVAL,
                             "%s: tensor %d: name is not NUL-terminated within %d bytes", path, i,
                             ST_MAX_NAME);
        if (!t[i].name[0]) return error_set(e, HDLM_EINVAL, "%s: tensor %d: empty name", path, i);
        if (!json_utf8_valid(t[i].name, strlen(t[i].name)))
            return error_set(e, HDLM_EINVAL, "%s: tensor %d: name is not valid UTF-8", path, i);
        if (!strcmp(t[i].name, "__metadata__"))
            return error_set(e, HDLM_EINVAL, "%s: tensor %d: the name '__metadata__' is reserved",
                             path, i);
        if (!st_dtype_size(t[i].dtype))
            return error_set(e, HDLM_EINVAL, "%s: tensor '%s': unknown dtype %d", path, t[i].name,
                             t[i].dtype);
        if (t[i].ndim < 0 || t[i].ndim > ST_MAX_NDIM)
            return error_set(e, HDLM_EINVAL, "%s: tensor '%s': ndim %d, expected 0..%d", path,
                             t[i].name, t[i].ndim, ST_MAX_NDIM);
        char sh[256];
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0)
                return error_set(e, HDLM_EINVAL, "%s: tensor '%s': negative dimension in shape %s",
                                 path, t[i].name, shape_str(sh, sizeof sh, t[i].ndim, t[i].shape));
        int64_t need = tensor_bytes(t[i].dtype, t[i].ndim, t[i].shape);
        if (need != t[i].nbytes)
            return error_set(e, HDLM_EINVAL,
                             "%s: tensor '%s': nbytes %lld, dtype %s shape %s needs %lld", path,
                             t[i].name, (long long)t[i].nbytes, st_dtype_name(t[i].dtype),
                             shape_str(sh, sizeof sh, t[i].ndim, t[i].shape), (long long)need);
        if (need > 0 && !t[i].data)
            return error_set(e, HDLM_EINVAL, "%s: tensor '%s': data is NULL", path, t[i].name);
    }
    for (int i = 0; i < n_meta; i++) {
        if (!mk[i] || !mv[i])
            return error_set(e, HDLM_EINVAL, "%s: metadata entry %d: key or value is NULL", path,
                             i);
        /* the JSON writer would replace bad bytes; refuse rather than store something else */
        if (!json_utf8_valid(mk[i], strlen(mk[i])) || !json_utf8_valid(mv[i], strlen(mv[i])))
            return error_set(e, HDLM_EINVAL, "%s: metadata entry %d: not valid UTF-8", path, i);
    }

    /* duplicate names would make an ambiguous header that strict readers (ours too) refuse */
    int total = n > n_meta ? n : n_meta;
    const char **names = malloc((size_t)(total ? total : 1) * sizeof *names);
    if (!names) return error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
    int rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        int m = pass ? n_meta : n;
        for (int i = 0; i < m; i++)
            names[i] = pass ? mk[i] : t[i].name;
        qsort(names, (size_t)m, sizeof *names, cmp_str_ptr);
        for (int i = 1; i < m && !rc; i++)
            if (!strcmp(names[i], names[i - 1]))
                rc = error_set(e, HDLM_EINVAL, "%s: %s '%.200s' appears twice", path,
                               pass ? "metadata key" : "tensor name", names[i]);
    }
    free(names);
    return rc;
}

/* The JSON header, padded with spaces so that 8 + its length is a multiple of 8. */
static int build_header(json_buf *b, const st_tensor *t, int n, const char *const *mk,
                        const char *const *mv, int n_meta) {
    json_buf_raw(b, "{");
    if (n_meta > 0) {
        json_buf_raw(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) json_buf_raw(b, ",");
            json_buf_str(b, mk[i]);
            json_buf_raw(b, ":");
            json_buf_str(b, mv[i]);
        }
        json_buf_raw(b, "}");
    }
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_meta > 0) json_buf_raw(b, ",");
        json_buf_str(b, t[i].name);
        json_buf_raw(b, ":{\"dtype\":");
        json_buf_str(b, st_dtype_name(t[i].dtype));
        json_buf_raw(b, ",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            if (d) json_buf_raw(b, ",");
            json_buf_int(b, t[i].shape[d]);
        }
        json_buf_raw(b, "],\"data_offsets\":[");
        json_buf_int(b, off);
        json_buf_raw(b, ",");
        off += t[i].nbytes;
        json_buf_int(b, off);
        json_buf_raw(b, "]}");
    }
    json_buf_raw(b, "}");
    while (b->len % 8)
        json_buf_raw(b, " ");
    return b->failed ? HDLM_ENOMEM : 0;
}

/* Writes everything to fp and makes it durable; returns 0 or an errno value. */
static int write_all(FILE *fp, const json_buf *hdr, const st_tensor *t, int n) {
    unsigned char len8[8];
    uint64_t hl = hdr->len;
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(hl >> (8 * i)); /* little endian */
    errno = 0;
    if (fwrite(len8, 1, 8, fp) != 8) return errno ? errno : EIO;
    if (fwrite(hdr->data, 1, hdr->len, fp) != hdr->len) return errno ? errno : EIO;
    for (int i = 0; i < n; i++)
        if (t[i].nbytes > 0 && fwrite(t[i].data, 1, (size_t)t[i].nbytes, fp) != (size_t)t[i].nbytes)
            return errno ? errno : EIO;
    if (fflush(fp)) return errno ? errno : EIO;
    if (fsync(fileno(fp))) return errno;
    return 0;
}

/* fsync of the directory holding path makes the rename itself durable. */
static int sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir) return ENOMEM;
    int rc = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        rc = errno;
    else {
        /* some file systems cannot sync directories (EINVAL): nothing more can be done there */
        if (fsync(fd) && errno != EINVAL) rc = errno;
        close(fd);
    }
    free(dir);
    return rc;
}

int st_write(const char *path, const st_tensor *tensors, int n, const char *const *meta_keys,
             const char *const *meta_vals, int n_meta, error *e) {
    HDLM_ASSERT(path && n >= 0 && (tensors || n == 0));
    HDLM_ASSERT(n_meta >= 0 && (n_meta == 0 || (meta_keys && meta_vals)));
    int rc = check_write_args(path, tensors, n, meta_keys, meta_vals, n_meta, e);
    if (rc) return rc;

    json_buf hdr = {0};
    if (build_header(&hdr, tensors, n, meta_keys, meta_vals, n_meta)) {
        json_buf_free(&hdr);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory building the header", path);
    }
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp) {
        json_buf_free(&hdr);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());

    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = error_set(e, HDLM_EIO, "%s: cannot create temporary file '%s': %s", path, tmp,
                       strerror(errno));
        goto done;
    }
    int err = write_all(fp, &hdr, tensors, n);
    if (fclose(fp) && !err) err = errno ? errno : EIO;
    if (err) {
        unlink(tmp);
        rc = error_set(e, HDLM_EIO, "%s: writing '%s' failed: %s", path, tmp, strerror(err));
        goto done;
    }
    if (rename(tmp, path)) {
        err = errno;
        unlink(tmp);
        rc = error_set(e, HDLM_EIO, "%s: cannot rename '%s' to it: %s", path, tmp, strerror(err));
        goto done;
    }
    if ((err = sync_parent_dir(path)))
        rc = error_set(e, HDLM_EIO, "%s: written, but syncing its directory failed: %s", path,
                       strerror(err));
done:
    free(tmp);
    json_buf_free(&hdr);
    return rc;
}

/* ------------------------------------------------------------------------------------ reading */

void st_close(st_file *f) {
    if (!f) return;
    json_free(f->header);
    free(f->tensors);
    free(f->by_name);
    free(f->buf);
    free(f->path);
    free(f);
}

static int read_whole_file(const char *path, st_file *f, error *e) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_set(e, HDLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fileno(fp), &st)) {
        rc = error_set(e, HDLM_EIO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = error_set(e, HDLM_EIO, "%s: not a regular file", path);
    } else {
        f->size = (size_t)st.st_size;
        f->buf = malloc(f->size ? f->size : 1);
        if (!f->buf)
            rc = error_set(e, HDLM_ENOMEM, "%s: cannot allocate %zu bytes", path, f->size);
        else if (fread(f->buf, 1, f->size, fp) != f->size)
            rc = error_set(e, HDLM_EIO, "%s: read failed: %s", path,
                           ferror(fp) ? strerror(errno) : "file shrank while reading");
    }
    fclose(fp);
    return rc;
}

static uint64_t read_u64_le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A non-negative integer JSON number, or -1. */
static int64_t json_nonneg_int(const json_value *v) {
    return json_is_int(v) && json_int(v) >= 0 ? json_int(v) : -1;
}

/* Fills t from one header entry; data_size is the size of the data section. */
static int parse_entry(const char *path, const char *name, const json_value *ent,
                       const unsigned char *data, uint64_t data_size, st_tensor *t, error *e) {
    char sh[256];
    if (json_type(ent) != JSON_OBJECT)
        return error_set(e, HDLM_EINVAL, "%s: tensor '%s': entry is %s, expected an object", path,
                         name, json_type_name(json_type(ent)));
    snprintf(t->name, sizeof t->name, "%s", name);

    const json_value *dt = json_get(ent, "dtype");
    if (json_type(dt) != JSON_STRING)
        return error_set(e, HDLM_EINVAL, "%s: tensor '%s': \"dtype\" is %s, expected a string",
                         path, name, json_type_name(json_type(dt)));
    t->dtype = dtype_from_name(json_string(dt));
    if (!t->dtype)
        return error_set(
            e, HDLM_EINVAL,
            "%s: tensor '%s': unknown dtype '%.32s' (supported: F32, BF16, F16, I32, U8, I64, F64)",
            path, name, json_string(dt));

    const json_value *shape = json_get(ent, "shape");
    if (json_type(shape) != JSON_ARRAY)
        return error_set(e, HDLM_EINVAL, "%s: tensor '%s': \"shape\" is %s, expected an array",
                         path, name, json_type_name(json_type(shape)));
    if (json_len(shape) > ST_MAX_NDIM)
        return error_set(e, HDLM_EINVAL, "%s: tensor '%s': shape has %zu dimensions, at most %d",
                         path, name, json_len(shape), ST_MAX_NDIM);
    t->ndim = (int)json_len(shape);
    for (int d = 0; d < t->ndim; d++) {
        t->shape[d] = json_nonneg_int(json_at(shape, (size_t)d));
        if (t->shape[d] < 0)
            return error_set(e, HDLM_EINVAL,
                             "%s: tensor '%s': shape entry %d is not a non-negative integer", path,
                             name, d);
    }

    const json_value *offs = json_get(ent, "data_offsets");
    int64_t begin = json_nonneg_int(json_at(offs, 0)), end = json_nonneg_int(json_at(offs, 1));
    if (json_type(offs) != JSON_ARRAY || json_len(offs) != 2 || begin < 0 || end < 0)
        return error_set(e, HDLM_EINVAL,
                         "%s: tensor '%s': \"data_offsets\" must be [begin, end], two non-negative "
                         "integers",
                         path, name);
    if (end < begin)
        return error_set(e, HDLM_EINVAL,
                         "%s: tensor '%s': data_offsets [%lld, %lld] end before they begin", path,
                         name, (long long)begin, (long long)end);
    int64_t need = tensor_bytes(t->dtype, t->ndim, t->shape);
    if (need < 0)
        return error_set(e, HDLM_EINVAL, "%s: tensor '%s': dtype %s shape %s is too large", path,
                         name, st_dtype_name(t->dtype),
                         shape_str(sh, sizeof sh, t->ndim, t->shape));
    if (end - begin != need)
        return error_set(
            e, HDLM_EINVAL,
            "%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes, dtype %s shape "
            "%s needs %lld",
            path, name, (long long)begin, (long long)end, (long long)(end - begin),
            st_dtype_name(t->dtype), shape_str(sh, sizeof sh, t->ndim, t->shape), (long long)need);
    if ((uint64_t)end > data_size)
        return error_set(e, HDLM_EINVAL,
                         "%s: tensor '%s': data_offsets [%lld, %lld] exceed the data section of "
                         "%llu bytes (truncated file?)",
                         path, name, (long long)begin, (long long)end,
                         (unsigned long long)data_size);
    t->data = data + begin;
    t->nbytes = need;
    return 0;
}

static int parse_metadata(const char *path, const json_value *meta, error *e) {
    if (json_type(meta) != JSON_OBJECT)
        return error_set(e, HDLM_EINVAL, "%s: \"__metadata__\" is %s, expected an object", path,
                         json_type_name(json_type(meta)));
    for (size_t i = 0; i < json_len(meta); i++) {
        json_kind k = json_type(json_value_at(meta, i));
        if (k != JSON_STRING)
            return error_set(e, HDLM_EINVAL,
                             "%s: \"__metadata__\" value of '%.128s' is %s, expected a string",
                             path, json_key_at(meta, i), json_type_name(k));
    }
    return 0;
}

typedef struct span {
    int64_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

/* The reference format wants the tensors to tile the data section: no overlap (aliasing), no
 * gap and nothing after the last tensor (room for hidden payloads). */
static int check_tiling(const char *path, const st_file *f, const unsigned char *data,
                        uint64_t data_size, error *e) {
    span *s = malloc((size_t)(f->n ? f->n : 1) * sizeof *s);
    if (!s) return error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < f->n; i++) {
        int64_t b = (const unsigned char *)f->tensors[i].data - data;
        s[i] = (span){b, b + f->tensors[i].nbytes, i};
    }
    qsort(s, (size_t)f->n, sizeof *s, cmp_span);
    int rc = 0;
    int64_t pos = 0;
    for (int i = 0; i < f->n && !rc; i++) {
        if (s[i].begin < pos) {
            const span *p = &s[i - 1];
            rc = error_set(e, HDLM_EINVAL,
                           "%s: tensors '%s' [%lld, %lld] and '%s' [%lld, %lld] overlap", path,
                           f->tensors[p->idx].name, (long long)p->begin, (long long)p->end,
                           f->tensors[s[i].idx].name, (long long)s[i].begin, (long long)s[i].end);
        } else if (s[i].begin > pos) {
            rc = error_set(e, HDLM_EINVAL,
                           "%s: data bytes [%lld, %lld] belong to no tensor (gap before '%s')",
                           path, (long long)pos, (long long)s[i].begin, f->tensors[s[i].idx].name);
        }
        pos = s[i].end;
    }
    if (!rc && (uint64_t)pos != data_size)
        rc =
            error_set(e, HDLM_EINVAL,
                      "%s: data section has %llu bytes but the tensors end at %lld (trailing data)",
                      path, (unsigned long long)data_size, (long long)pos);
    free(s);
    return rc;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

static int parse_file(const char *path, st_file *f, error *e) {
    if (f->size < 8)
        return error_set(
            e, HDLM_EINVAL,
            "%s: file has %zu bytes, too short for the 8-byte header length (truncated?)", path,
            f->size);
    uint64_t hl = read_u64_le(f->buf);
    if (hl > ST_MAX_HEADER)
        return error_set(e, HDLM_EINVAL, "%s: header length %llu exceeds the limit of %d bytes",
                         path, (unsigned long long)hl, ST_MAX_HEADER);
    if (hl > f->size - 8)
        return error_set(e, HDLM_EINVAL,
                         "%s: header length %llu exceeds the %zu bytes after the length prefix "
                         "(truncated?)",
                         path, (unsigned long long)hl, f->size - 8);
    const char *htext = (const char *)f->buf + 8;
    if (hl == 0 || htext[0] != '{')
        return error_set(e, HDLM_EINVAL, "%s: header does not start with '{'", path);
    int rc = json_parse(htext, (size_t)hl, &f->header, e);
    if (rc) return error_wrap(e, "%s: header", path);

    const unsigned char *data = f->buf + 8 + hl;
    uint64_t data_size = f->size - 8 - hl;
    size_t nent = json_len(f->header);
    f->tensors = calloc(nent ? nent : 1, sizeof *f->tensors);
    f->by_name = malloc((nent ? nent : 1) * sizeof *f->by_name);
    if (!f->tensors || !f->by_name) return error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < nent; i++) {
        const char *name = json_key_at(f->header, i);
        const json_value *ent = json_value_at(f->header, i);
        if (!strcmp(name, "__metadata__")) {
            if ((rc = parse_metadata(path, ent, e))) return rc;
            f->meta = ent;
            continue;
        }
        size_t nl = json_key_len(f->header, i);
        if (nl != strlen(name) || nl == 0 || nl >= ST_MAX_NAME)
            return error_set(e, HDLM_EINVAL,
                             "%s: tensor name '%.64s%s' (%zu bytes): names must be 1..%d bytes "
                             "without NUL",
                             path, name, nl > 64 ? "..." : "", nl, ST_MAX_NAME - 1);
        if ((rc = parse_entry(path, name, ent, data, data_size, &f->tensors[f->n], e))) return rc;
        f->by_name[f->n] = &f->tensors[f->n];
        f->n++;
    }
    if ((rc = check_tiling(path, f, data, data_size, e))) return rc;
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_tensor_name);
    return 0;
}

int st_open(const char *path, st_file **out, error *e) {
    HDLM_ASSERT(path && out);
    *out = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
    }
    int rc = read_whole_file(path, f, e);
    if (!rc) rc = parse_file(path, f, e);
    if (rc) {
        st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int st_count(const st_file *f) {
    return f ? f->n : 0;
}

const st_tensor *st_at(const st_file *f, int i) {
    return f && i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

static int cmp_name_key(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const st_tensor *const *)elem)->name);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name || !f->n) return NULL;
    const st_tensor *const *hit =
        bsearch(name, f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name_key);
    return hit ? *hit : NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    return f ? json_string(json_get(f->meta, key)) : NULL;
}

int st_meta_count(const st_file *f) {
    return f ? (int)json_len(f->meta) : 0;
}

const char *st_meta_key_at(const st_file *f, int i) {
    return f && i >= 0 ? json_key_at(f->meta, (size_t)i) : NULL;
}

const char *st_path(const st_file *f) {
    return f ? f->path : NULL;
}

int st_read_f32(const st_file *f, const char *name, float *dst, int ndim, const int64_t *shape,
                error *e) {
    HDLM_ASSERT(f && name && ndim >= 0 && (shape || ndim == 0));
    const st_tensor *t = st_find(f, name);
    if (!t)
        return error_set(e, HDLM_EINVAL, "%s: tensor '%s' not found (the file has %d tensors)",
                         f->path, name, f->n);
    if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16)
        return error_set(e, HDLM_EINVAL, "%s: tensor '%s' has dtype %s, expected F32 (or BF16/F16)",
                         f->path, name, st_dtype_name(t->dtype));
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        char have[256], want[256];
        return error_set(e, HDLM_EINVAL, "%s: tensor '%s' has shape %s, expected %s", f->path, name,
                         shape_str(have, sizeof have, t->ndim, t->shape),
                         shape_str(want, sizeof want, ndim, shape));
    }
    /* memcpy: t->data need not be 4-byte aligned */
    if (t->nbytes > 0) {
        HDLM_ASSERT(dst);
        if (t->dtype == ST_F32) {
            memcpy(dst, t->data, (size_t)t->nbytes);
        } else {
            const unsigned char *src = t->data;
            int64_t n = t->nbytes / 2;
            for (int64_t i = 0; i < n; i++) {
                uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)); /* little-endian */
                dst[i] = t->dtype == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
            }
        }
    }
    return 0;
}

float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

uint16_t st_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, ex = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (ex == 0x1f) { /* inf, NaN */
        u = sign | 0x7f800000u | (man << 13);
    } else if (ex) { /* normal */
        u = sign | ((ex + 112u) << 23) | (man << 13);
    } else if (man) { /* subnormal: man · 2^-24, exact in F32 */
        float x = (float)man * 0x1p-24f;
        memcpy(&u, &x, sizeof u);
        u |= sign;
    } else {
        u = sign;
    }
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
