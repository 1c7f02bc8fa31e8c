/* Token files: text -> validated UTF-8 -> tokens -> deterministic train/valid split -> one file
 * written atomically; and the loader that trusts nothing in that file until it has been checked
 * against the real file length and the payload checksum. Whole files are read into memory (no
 * mmap, no streaming): corpora for this project are tens of megabytes at most. */
#include "data/tokfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_SIZE 64
static const char tokfile_magic[8] = {'H', 'D', 'L', 'M', 'T', 'O', 'K', '1'};

/* ---------------------------------------------------------------- little-endian helpers */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* splitmix64's output function: a bijective 64-bit mixer. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t tokfile_chunk_hash(uint64_t chunk, uint64_t split_seed) {
    /* The seed is mixed on its own first so that seeds differing by the splitmix increment do not
     * give shifted copies of the same split. */
    return mix64(mix64(split_seed ^ 0x5851f42d4c957f2dull) + (chunk + 1) * 0x9e3779b97f4a7c15ull);
}

/* hash / 2^64 with 53 bits, exactly representable as a double. */
static double chunk_u01(uint64_t chunk, uint64_t split_seed) {
    return (double)(tokfile_chunk_hash(chunk, split_seed) >> 11) * 0x1.0p-53;
}

int64_t tokfile_split_chunks(int64_t n_tokens, double valid_fraction, uint64_t split_seed,
                             unsigned char *is_valid) {
    HDLM_ASSERT(n_tokens >= 0 && valid_fraction >= 0 && valid_fraction <= 0.5);
    int64_t n_chunks = (n_tokens + TOKFILE_CHUNK - 1) / TOKFILE_CHUNK;
    if (n_chunks < 2 || valid_fraction <= 0) {
        for (int64_t k = 0; k < n_chunks; k++)
            is_valid[k] = 0;
        return n_chunks;
    }
    int64_t n_valid = 0, k_min = 0, k_max = 0;
    uint64_t h_min = UINT64_MAX, h_max = 0;
    for (int64_t k = 0; k < n_chunks; k++) {
        uint64_t h = tokfile_chunk_hash((uint64_t)k, split_seed);
        is_valid[k] = chunk_u01((uint64_t)k, split_seed) < valid_fraction;
        n_valid += is_valid[k];
        if (h < h_min) h_min = h, k_min = k;
        if (h > h_max || k == 0) h_max = h, k_max = k;
    }
    /* Both splits must be non-empty. The chunk picked is the one that would switch first as the
     * fraction moves, so the forced choice agrees with the hash order. */
    if (n_valid == 0) is_valid[k_min] = 1;
    if (n_valid == n_chunks) is_valid[k_max] = 0;
    return n_chunks;
}

/* ---------------------------------------------------------------- reading and checking text */

int tokfile_read_all(const char *path, unsigned char **buf, size_t *len, error *e) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(e, HDLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int err = errno;
        fclose(f);
        return error_set(e, HDLM_EIO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return error_set(e, HDLM_EIO, "%s: is a directory, expected a UTF-8 text file", path);
    }
    /* Grow as we go rather than trusting st_size, so pipes and files that change size work. */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16;
    size_t n = 0;
    unsigned char *p = malloc(cap);
    if (!p) {
        fclose(f);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory reading %zu bytes", path, cap);
    }
    for (;;) {
        if (n == cap) {
            unsigned char *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                fclose(f);
                return error_set(e, HDLM_ENOMEM, "%s: out of memory reading %zu bytes", path,
                                 cap * 2);
            }
            p = q;
            cap *= 2;
        }
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int err = errno;
        free(p);
        fclose(f);
        return error_set(e, HDLM_EIO, "%s: read error: %s", path, strerror(err));
    }
    fclose(f);
    *buf = p;
    *len = n;
    return HDLM_OK;
}

/* Length of the valid UTF-8 sequence starting at s[0] (n bytes available), or 0 if invalid:
 * stray continuation bytes, overlong forms, UTF-16 surrogates and code points above U+10FFFF. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char b = s[0];
    if (b < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b == 0xe0)
        len = 3, lo = 0xa0; /* overlong below U+0800 */
    else if (b == 0xed)
        len = 3, hi = 0x9f; /* surrogates U+D800..DFFF */
    else if (b >= 0xe1 && b <= 0xef)
        len = 3;
    else if (b == 0xf0)
        len = 4, lo = 0x90; /* overlong below U+10000 */
    else if (b >= 0xf1 && b <= 0xf3)
        len = 4;
    else if (b == 0xf4)
        len = 4, hi = 0x8f; /* above U+10FFFF */
    else
        return 0; /* 80..c1, f5..ff */
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

/* Refuses NUL bytes and invalid UTF-8, naming the offset of the first offending sequence. */
static int check_text(const char *path, const unsigned char *s, size_t n, error *e) {
    for (size_t i = 0; i < n;) {
        if (s[i] == 0)
            return error_set(e, HDLM_EINVAL, "%s: NUL byte at offset %zu, expected UTF-8 text",
                             path, i);
        size_t len = utf8_seq_len(s + i, n - i);
        if (len == 0)
            return error_set(e, HDLM_EINVAL, "%s: invalid UTF-8 at byte offset %zu (byte 0x%02x)",
                             path, i, s[i]);
        i += len;
    }
    return HDLM_OK;
}

/* ---------------------------------------------------------------- writing */

int tokfile_write_all(const char *out_path, const void *header, size_t header_len,
                      const void *payload, size_t payload_len, error *e) {
    size_t plen = strlen(out_path) + 32;
    char *tmp = malloc(plen);
    if (!tmp) return error_set(e, HDLM_ENOMEM, "%s: out of memory", out_path);
    snprintf(tmp, plen, "%s.tmp.%ld", out_path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        error_set(e, HDLM_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return HDLM_EIO;
    }
    int ok = (!header_len || fwrite(header, 1, header_len, f) == header_len) &&
             (!payload_len || fwrite(payload, 1, payload_len, f) == payload_len) &&
             fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) ok = 0, err = errno;
    if (!ok) {
        unlink(tmp);
        error_set(e, HDLM_EIO, "%s: write failed: %s", tmp, strerror(err));
        free(tmp);
        return HDLM_EIO;
    }
    if (rename(tmp, out_path) != 0) {
        err = errno;
        unlink(tmp);
        error_set(e, HDLM_EIO, "%s: cannot rename %s into place: %s", out_path, tmp, strerror(err));
        free(tmp);
        return HDLM_EIO;
    }
    free(tmp);
    /* Make the rename itself durable; failure here (e.g. a filesystem that refuses fsync on
     * directories) leaves a correct file behind, so it is not an error. */
    char *dir = strdup(out_path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
        int fd = open(d, O_RDONLY);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
        free(dir);
    }
    return HDLM_OK;
}

int tokfile_prepare(const char *text_path, const char *out_path, const char *tokenizer_name,
                    double valid_fraction, uint64_t split_seed, tokfile_stats *stats, error *e) {
    tokfile_options o = {tokenizer_name, valid_fraction, split_seed, TOKFILE_DOCS_DEFAULT};
    return tokfile_prepare_opts(text_path, out_path, &o, stats, e);
}

int tokfile_docs_from_name(const char *name, int *docs) {
    if (!name || !strcmp(name, "default")) return *docs = TOKFILE_DOCS_DEFAULT, HDLM_OK;
    if (!strcmp(name, "blank")) return *docs = TOKENIZER_DOCS_BLANK, HDLM_OK;
    if (!strcmp(name, "none")) return *docs = TOKENIZER_DOCS_NONE, HDLM_OK;
    return HDLM_EINVAL;
}

int tokfile_prepare_opts(const char *text_path, const char *out_path, const tokfile_options *o,
                         tokfile_stats *stats, error *e) {
    HDLM_ASSERT(text_path && out_path && o);
    if (stats) *stats = (tokfile_stats){0};
    tokenizer tok;
    const char *tokenizer_name = o->tokenizer ? o->tokenizer : "bytes";
    double valid_fraction = o->valid;
    uint64_t split_seed = o->seed;
    int rc = tokenizer_init(&tok, tokenizer_name, e);
    if (rc < 0) return rc;
    if (!(valid_fraction >= 0 && valid_fraction <= 0.5))
        return error_set(e, HDLM_EINVAL, "%s: valid fraction %g is outside [0, 0.5]", text_path,
                         valid_fraction);
    /* document breaks by default wherever there is an end-of-text token to mark them */
    int docs = o->docs == TOKFILE_DOCS_DEFAULT
                   ? (tok.eot >= 0 ? TOKENIZER_DOCS_BLANK : TOKENIZER_DOCS_NONE)
                   : o->docs;

    unsigned char *text = NULL, *payload = NULL, *is_valid = NULL;
    int32_t *ids = NULL;
    size_t n_bytes = 0;
    int64_t n_docs = 0;
    rc = tokfile_read_all(text_path, &text, &n_bytes, e);
    if (rc < 0) goto done;
    if (n_bytes == 0) {
        rc = error_set(e, HDLM_EINVAL, "%s: empty file, expected UTF-8 text", text_path);
        goto done;
    }
    rc = check_text(text_path, text, n_bytes, e);
    if (rc < 0) goto done;

    ids = malloc(n_bytes * sizeof *ids); /* (n_bytes): no tokenizer emits more than one per byte */
    if (!ids) {
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory for %zu tokens", text_path, n_bytes);
        goto done;
    }
    int64_t n = tokenizer_encode_docs(&tok, (const char *)text, n_bytes, docs, ids, &n_docs, e);
    free(text);
    text = NULL;
    if (n < 0) {
        rc = error_wrap(e, "%s", text_path);
        goto done;
    }
    if (n == 0) {
        rc = error_set(e, HDLM_EINVAL, "%s: the %s tokenizer produced no tokens (no letters?)",
                       text_path, tokenizer_name);
        goto done;
    }

    /* Split: chunk membership from the hash, except a single chunk, whose tail is the
     * validation split so that a small corpus still gets one. */
    int64_t n_chunks = (n + TOKFILE_CHUNK - 1) / TOKFILE_CHUNK;
    is_valid = malloc((size_t)n_chunks);
    if (!is_valid) {
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", text_path);
        goto done;
    }
    tokfile_split_chunks(n, valid_fraction, split_seed, is_valid);
    int64_t n_valid = 0;
    if (n_chunks == 1) {
        n_valid = (int64_t)ceil(valid_fraction * (double)n);
    } else {
        for (int64_t k = 0; k < n_chunks; k++) {
            if (!is_valid[k]) continue;
            int64_t end = (k + 1) * TOKFILE_CHUNK < n ? (k + 1) * TOKFILE_CHUNK : n;
            n_valid += end - k * TOKFILE_CHUNK;
        }
    }
    int64_t n_train = n - n_valid;

    int bpt = tok.vocab <= 256 ? 1 : 2;
    payload = malloc((size_t)n * (size_t)bpt); /* (n_train + n_valid) * bpt */
    if (!payload) {
        rc =
            error_set(e, HDLM_ENOMEM, "%s: out of memory for %lld tokens", text_path, (long long)n);
        goto done;
    }
    /* Train tokens then validation tokens, each in stream order. */
    int64_t wt = 0, wv = n_train;
    for (int64_t i = 0; i < n; i++) {
        int valid = n_chunks == 1 ? i >= n_train : is_valid[i / TOKFILE_CHUNK];
        int64_t at = valid ? wv++ : wt++;
        if (bpt == 1) {
            payload[at] = (unsigned char)ids[i];
        } else {
            payload[2 * at] = (unsigned char)(ids[i] & 0xff);
            payload[2 * at + 1] = (unsigned char)(ids[i] >> 8);
        }
    }
    HDLM_ASSERT(wt == n_train && wv == n);

    /* version 1 for the fixed tokenizers (the kind is their whole identity); version 2 adds the
     * record naming a learned vocabulary: its SHA-256 and label */
    const char *label = tokenizer_label(&tok);
    size_t label_len = strlen(label);
    int learned = tok.bpe != NULL;
    unsigned char header[HEADER_SIZE + 32 + 4096] = {0};
    if (learned && label_len > 4095) {
        rc = error_set(e, HDLM_EINVAL, "%s: tokenizer name longer than 4095 bytes", out_path);
        goto done;
    }
    memcpy(header, tokfile_magic, 8);
    put_u32(header + 8, learned ? 2 : 1);
    put_u32(header + 12, (uint32_t)tok.kind);
    put_u32(header + 16, (uint32_t)tok.vocab);
    put_u32(header + 20, (uint32_t)bpt);
    put_u64(header + 24, (uint64_t)n_train);
    put_u64(header + 32, (uint64_t)n_valid);
    put_u64(header + 40, fnv1a64(payload, (size_t)n * (size_t)bpt));
    put_u64(header + 48, split_seed);
    size_t header_len = HEADER_SIZE;
    if (learned) {
        put_u32(header + 56, (uint32_t)label_len);
        const char *hex = tokenizer_sha256(&tok);
        for (int i = 0; i < 32; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            header[HEADER_SIZE + i] = (unsigned char)v;
        }
        memcpy(header + HEADER_SIZE + 32, label, label_len);
        header_len += 32 + label_len;
    }
    rc = tokfile_write_all(out_path, header, header_len, payload, (size_t)n * (size_t)bpt, e);
    if (rc < 0) goto done;
    if (stats)
        *stats = (tokfile_stats){.n_bytes = (int64_t)n_bytes,
                                 .n_train = n_train,
                                 .n_valid = n_valid,
                                 .n_docs = n_docs,
                                 .docs = docs};
done:
    free(text);
    free(ids);
    free(is_valid);
    free(payload);
    return rc;
}

/* ---------------------------------------------------------------- loading */

/* The 8 magic bytes as a quoted-free printable string, non-printables as \xNN. */
static void format_magic(const unsigned char *m, char *out /* >= 33 */) {
    size_t w = 0;
    for (int i = 0; i < 8; i++) {
        if (m[i] >= 0x20 && m[i] < 0x7f && m[i] != '\\' && m[i] != '\'')
            out[w++] = (char)m[i];
        else
            w += (size_t)sprintf(out + w, "\\x%02x", m[i]);
    }
    out[w] = '\0';
}

static int load_fail(FILE *f, unsigned char *payload, corpus *c, int rc) {
    if (f) fclose(f);
    free(payload);
    corpus_free(c);
    return rc;
}

int corpus_load(const char *path, corpus *c, error *e) {
    return corpus_load_expect(path, NULL, c, e);
}

int corpus_load_expect(const char *path, const tokenizer *expect, corpus *c, error *e) {
    HDLM_ASSERT(path && c);
    *c = (corpus){0};
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(e, HDLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return load_fail(f, NULL, c,
                         error_set(e, HDLM_EIO, "%s: cannot stat: %s", path, strerror(errno)));
    if (!S_ISREG(st.st_mode))
        return load_fail(
            f, NULL, c,
            error_set(e, HDLM_EIO, "%s: not a regular file, expected a token file", path));
    uint64_t file_size = (uint64_t)st.st_size;
    if (file_size < HEADER_SIZE)
        return load_fail(f, NULL, c,
                         error_set(e, HDLM_EINVAL,
                                   "%s: truncated: %llu bytes, a token file header is %d", path,
                                   (unsigned long long)file_size, HEADER_SIZE));
    unsigned char h[HEADER_SIZE];
    if (fread(h, 1, HEADER_SIZE, f) != HEADER_SIZE)
        return load_fail(
            f, NULL, c,
            error_set(e, HDLM_EIO, "%s: cannot read the %d-byte header", path, HEADER_SIZE));
    if (memcmp(h, tokfile_magic, 8) != 0) {
        char m[33];
        format_magic(h, m);
        return load_fail(f, NULL, c,
                         error_set(e, HDLM_EINVAL,
                                   "%s: not an hdlm token file (magic '%s', expected 'HDLMTOK1')",
                                   path, m));
    }
    uint32_t version = get_u32(h + 8), kind = get_u32(h + 12), vocab = get_u32(h + 16),
             bpt = get_u32(h + 20);
    uint64_t n_train = get_u64(h + 24), n_valid = get_u64(h + 32), checksum = get_u64(h + 40);
    if (version != 1 && version != 2)
        return load_fail(f, NULL, c,
                         error_set(e, HDLM_EINVAL, "%s: format version %u, this hdlm reads 1 and 2",
                                   path, version));
    /* the tokenizer's identity: the kind (version 1), or the record after the header */
    char label[4096], file_sha[65];
    uint64_t rec = 0;
    if (version == 2) {
        uint32_t ll = get_u32(h + 56);
        unsigned char raw[32];
        if (ll == 0 || ll > 4095 || file_size < HEADER_SIZE + 32 + (uint64_t)ll)
            return load_fail(f, NULL, c,
                             error_set(e, HDLM_EINVAL,
                                       "%s: truncated or bad tokenizer record (name of %u bytes, "
                                       "file of %llu bytes)",
                                       path, ll, (unsigned long long)file_size));
        if (fread(raw, 1, 32, f) != 32 || fread(label, 1, ll, f) != ll)
            return load_fail(f, NULL, c,
                             error_set(e, HDLM_EIO, "%s: cannot read the tokenizer record", path));
        label[ll] = '\0';
        for (int i = 0; i < 32; i++)
            snprintf(file_sha + 2 * i, 3, "%02x", raw[i]);
        rec = 32 + ll;
        if ((kind != TOKENIZER_GPT2 && kind != TOKENIZER_BPE) || strlen(label) != ll)
            return load_fail(f, NULL, c,
                             error_set(e, HDLM_EINVAL,
                                       "%s: tokenizer kind %u in a version 2 file, expected %d "
                                       "(gpt2) or %d (bpe) with a name",
                                       path, kind, TOKENIZER_GPT2, TOKENIZER_BPE));
    } else {
        if (kind != TOKENIZER_BYTES && kind != TOKENIZER_TEXT8)
            return load_fail(f, NULL, c,
                             error_set(e, HDLM_EINVAL,
                                       "%s: unknown tokenizer kind %u, expected %d (bytes) or %d "
                                       "(text8)",
                                       path, kind, TOKENIZER_BYTES, TOKENIZER_TEXT8));
        tokenizer fixed;
        tokenizer_init_kind(&fixed, (int)kind, NULL);
        snprintf(label, sizeof label, "%s", tokenizer_name((int)kind));
        snprintf(file_sha, sizeof file_sha, "%s", tokenizer_sha256(&fixed));
    }
    if (expect) {
        if (strcmp(file_sha, tokenizer_sha256(expect)))
            return load_fail(f, NULL, c,
                             error_set(e, HDLM_EINVAL,
                                       "%s: made with tokenizer %s (vocabulary SHA-256 %.16s...), "
                                       "expected %s (vocabulary SHA-256 %.16s...)",
                                       path, label, file_sha, tokenizer_label(expect),
                                       tokenizer_sha256(expect)));
        c->tok = *expect;
    } else {
        int rc = tokenizer_init(&c->tok, label, e);
        if (rc < 0)
            return load_fail(f, NULL, c, error_wrap(e, "%s: made with tokenizer %s", path, label));
        if (strcmp(file_sha, tokenizer_sha256(&c->tok)))
            return load_fail(f, NULL, c,
                             error_set(e, HDLM_EINVAL,
                                       "%s: made with tokenizer %s whose vocabulary had SHA-256 "
                                       "%.16s..., but %s now has %.16s...",
                                       path, label, file_sha, label, tokenizer_sha256(&c->tok)));
    }
    if (vocab != (uint32_t)c->tok.vocab)
        return load_fail(f, NULL, c,
                         error_set(e, HDLM_EINVAL,
                                   "%s: vocabulary %u does not match tokenizer %s (%d)", path,
                                   vocab, tokenizer_label(&c->tok), (int)c->tok.vocab));
    if (bpt != 1 && bpt != 2)
        return load_fail(
            f, NULL, c,
            error_set(e, HDLM_EINVAL, "%s: %u bytes per token, expected 1 or 2", path, bpt));

    /* Sizes are checked against the real file before anything is allocated from them. */
    uint64_t have = file_size - HEADER_SIZE - rec;
    uint64_t n = n_train + n_valid;
    if (n < n_train || n > UINT64_MAX / bpt)
        return load_fail(f, NULL, c,
                         error_set(e, HDLM_EINVAL,
                                   "%s: truncated: header says %llu + %llu tokens, more than any "
                                   "file holds; file has %llu bytes of tokens",
                                   path, (unsigned long long)n_train, (unsigned long long)n_valid,
                                   (unsigned long long)have));
    uint64_t need = n * bpt;
    if (need != have)
        return load_fail(
            f, NULL, c,
            error_set(e, HDLM_EINVAL,
                      "%s: %s: header says %llu tokens (%llu bytes), file has %llu bytes of tokens",
                      path, need > have ? "truncated" : "trailing bytes", (unsigned long long)n,
                      (unsigned long long)need, (unsigned long long)have));

    unsigned char *payload = malloc(need ? need : 1);
    if (!payload)
        return load_fail(f, NULL, c,
                         error_set(e, HDLM_ENOMEM, "%s: out of memory for %llu bytes", path,
                                   (unsigned long long)need));
    if (fread(payload, 1, need, f) != need)
        return load_fail(f, payload, c,
                         error_set(e, HDLM_EIO, "%s: read error in the token payload", path));
    fclose(f);
    f = NULL;
    uint64_t actual = fnv1a64(payload, need);
    if (actual != checksum)
        return load_fail(f, payload, c,
                         error_set(e, HDLM_EINVAL,
                                   "%s: checksum mismatch: file is corrupt (header %016llx, "
                                   "payload %016llx)",
                                   path, (unsigned long long)checksum, (unsigned long long)actual));

    c->train = malloc((n_train ? n_train : 1) * sizeof *c->train); /* (n_train) */
    c->valid = malloc((n_valid ? n_valid : 1) * sizeof *c->valid); /* (n_valid) */
    if (!c->train || !c->valid)
        return load_fail(f, payload, c,
                         error_set(e, HDLM_ENOMEM, "%s: out of memory for %llu tokens", path,
                                   (unsigned long long)n));
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v =
            bpt == 1 ? payload[i] : (uint32_t)payload[2 * i] | (uint32_t)payload[2 * i + 1] << 8;
        if (v >= vocab)
            return load_fail(f, payload, c,
                             error_set(e, HDLM_EINVAL,
                                       "%s: token %u at index %llu is outside the vocabulary (%u)",
                                       path, v, (unsigned long long)i, vocab));
        if (i < n_train)
            c->train[i] = (int32_t)v;
        else
            c->valid[i - n_train] = (int32_t)v;
    }
    free(payload);
    c->n_train = (int64_t)n_train;
    c->n_valid = (int64_t)n_valid;
    c->checksum = checksum;
    return HDLM_OK;
}

void corpus_free(corpus *c) {
    if (!c) return;
    free(c->train);
    free(c->valid);
    *c = (corpus){0};
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

int corpus_open(const char *path, const tokfile_options *o, int check_tok, const char *out,
                corpus *c, char *tok_path, size_t cap, error *e) {
    tokenizer want;
    int rc = tokenizer_init(&want, o->tokenizer ? o->tokenizer : "bytes", e);
    if (rc != HDLM_OK) return rc;
    if (ends_with(path, ".tok")) {
        snprintf(tok_path, cap, "%s", path);
    } else {
        /* the token file name carries the settings, so different settings never collide (a BPE
         * by its vocabulary hash: retraining into the same directory gives a new file) */
        char tag[32];
        tokenizer_file_tag(&want, tag);
        const char *dsuf = o->docs == TOKFILE_DOCS_DEFAULT   ? ""
                           : o->docs == TOKENIZER_DOCS_BLANK ? ".docs"
                                                             : ".nodocs";
        if (out)
            snprintf(tok_path, cap, "%s", out);
        else
            snprintf(tok_path, cap, "%s.%s%s.v%g.s%lld.tok", path, tag, dsuf, o->valid,
                     (long long)o->seed);
        struct stat st_text, st_tok;
        int have_text = stat(path, &st_text) == 0;
        int fresh =
            stat(tok_path, &st_tok) == 0 && (!have_text || st_tok.st_mtime >= st_text.st_mtime);
        if (!fresh && (rc = tokfile_prepare_opts(path, tok_path, o, NULL, e)) != HDLM_OK) return rc;
    }
    /* a .tok given directly is checked against the tokenizer only when one was asked for */
    return corpus_load_expect(tok_path, check_tok || !ends_with(path, ".tok") ? &want : NULL, c, e);
}
