/* Tokenizers: `bytes` (identity on bytes), `text8` (27 symbols, lower-case letters and space) and
 * the byte-level BPEs `gpt2` and `bpe:DIR` (data/bpe.h). The fixed tokenizers encode in a single
 * streaming pass with no allocation. BPE vocabularies are loaded once per process into a small
 * registry and never freed, so a `tokenizer` stays a plain value that can be copied anywhere
 * (models, corpora and samplers keep copies). */
#include "data/tokenizer.h"

#include "base/paths.h"
#include "base/sha256.h"
#include "data/bpe.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- the BPE registry */

typedef struct loaded_bpe {
    int kind;
    char *dir; /* resolved directory */
    bpe *b;
    struct loaded_bpe *next;
} loaded_bpe;

static loaded_bpe *registry;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static int file_exists(const char *dir, const char *name) {
    char p[PATH_MAX + 32];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* GPT-2's directory: $HDLM_GPT2_DIR, ./data/gpt2, then gpt2/ in hdlm's data folder (installed:
 * P/share/hdlm/gpt2; in the build tree: the checkout's data/gpt2; base/paths.h); the first
 * holding both files. */
static int gpt2_dir(char *out, size_t cap, error *e) {
    const char *env = getenv("HDLM_GPT2_DIR");
    if (env && *env) {
        if (file_exists(env, "encoder.json") && file_exists(env, "vocab.bpe")) {
            if (!realpath(env, out)) snprintf(out, cap, "%s", env);
            return HDLM_OK;
        }
        return error_set(e, HDLM_EIO,
                         "tokenizer gpt2: HDLM_GPT2_DIR=%s holds no encoder.json + vocab.bpe", env);
    }
    char data[PATH_MAX], expected[PATH_MAX], shipped[PATH_MAX + 8] = "";
    if (paths_data_dir(data, sizeof data, expected, sizeof expected) == 0)
        snprintf(shipped, sizeof shipped, "%s/gpt2", data);
    const char *cands[2] = {"data/gpt2", shipped[0] ? shipped : NULL};
    for (int i = 0; i < 2; i++) {
        if (cands[i] && file_exists(cands[i], "encoder.json") &&
            file_exists(cands[i], "vocab.bpe")) {
            if (!realpath(cands[i], out)) snprintf(out, cap, "%s", cands[i]);
            return HDLM_OK;
        }
    }
    /* name every place looked in and the command that puts the files where this hdlm looks */
    const char *dest = shipped[0] ? data : expected;
    return error_set(e, HDLM_EIO,
                     "tokenizer gpt2: encoder.json and vocab.bpe not found in ./data/gpt2 or "
                     "%s/gpt2; fetch them with scripts/get-data.sh gpt2 %s (an installed hdlm has "
                     "that script as share/hdlm/get-data.sh), or set HDLM_GPT2_DIR to a folder "
                     "holding them",
                     dest, dest);
}

static int check_pinned(const char *dir, const char *file, const char *want, error *e) {
    char path[PATH_MAX + 32], got[65];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = sha256_hex_file(path, got, e);
    if (rc < 0) return rc;
    if (strcmp(got, want))
        return error_set(e, HDLM_EINVAL,
                         "tokenizer gpt2: %s has SHA-256 %s, expected GPT-2's %s (refetch with "
                         "scripts/get-data.sh gpt2)",
                         path, got, want);
    return HDLM_OK;
}

/* The registry's vocabulary for (kind, dir), loading it on first use. */
static int registry_get(int kind, const char *dir_in, const bpe **out, error *e) {
    char dir[PATH_MAX];
    int rc = HDLM_OK;
    if (kind == TOKENIZER_GPT2) {
        rc = gpt2_dir(dir, sizeof dir, e);
        if (rc < 0) return rc;
    } else if (!realpath(dir_in, dir)) {
        return error_set(e, HDLM_EIO, "tokenizer bpe:%s: %s: %s", dir_in, dir_in, strerror(errno));
    }
    pthread_mutex_lock(&registry_lock);
    for (loaded_bpe *l = registry; l; l = l->next)
        if (l->kind == kind && !strcmp(l->dir, dir)) {
            *out = l->b;
            pthread_mutex_unlock(&registry_lock);
            return HDLM_OK;
        }
    char label[PATH_MAX + 8];
    snprintf(label, sizeof label, kind == TOKENIZER_GPT2 ? "gpt2" : "bpe:%s", dir);
    bpe *b = NULL;
    loaded_bpe *l = NULL;
    if (kind == TOKENIZER_GPT2) {
        rc = check_pinned(dir, "encoder.json", GPT2_ENCODER_SHA256, e);
        if (rc == HDLM_OK) rc = check_pinned(dir, "vocab.bpe", GPT2_VOCAB_SHA256, e);
    }
    if (rc == HDLM_OK) {
        rc = bpe_load(dir, label, &b, e);
        if (rc < 0) error_wrap(e, "tokenizer %s", label);
    }
    if (rc == HDLM_OK && bpe_eot(b) < 0 && kind == TOKENIZER_GPT2)
        rc = error_set(e, HDLM_EINVAL, "tokenizer gpt2: %s/encoder.json has no <|endoftext|>", dir);
    if (rc == HDLM_OK) {
        l = calloc(1, sizeof *l);
        if (l) l->dir = strdup(dir);
        if (!l || !l->dir) rc = error_set(e, HDLM_ENOMEM, "tokenizer %s: out of memory", label);
    }
    if (rc == HDLM_OK) {
        *l = (loaded_bpe){kind, l->dir, b, registry};
        registry = l;
        *out = b;
    } else {
        bpe_free(b);
        if (l) free(l->dir);
        free(l);
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

/* ---------------------------------------------------------------- names and identity */

static void init_bpe(tokenizer *t, int kind, const bpe *b) {
    *t = (tokenizer){.kind = kind, .vocab = bpe_vocab(b), .eot = bpe_eot(b), .bpe = b};
}

int tokenizer_init(tokenizer *t, const char *name, error *e) {
    HDLM_ASSERT(t);
    if (name && !strcmp(name, "bytes")) return tokenizer_init_kind(t, TOKENIZER_BYTES, e);
    if (name && !strcmp(name, "text8")) return tokenizer_init_kind(t, TOKENIZER_TEXT8, e);
    if (name && !strcmp(name, "gpt2")) return tokenizer_init_kind(t, TOKENIZER_GPT2, e);
    if (name && !strncmp(name, "bpe:", 4) && name[4]) {
        const bpe *b;
        int rc = registry_get(TOKENIZER_BPE, name + 4, &b, e);
        if (rc < 0) return rc;
        init_bpe(t, TOKENIZER_BPE, b);
        return HDLM_OK;
    }
    return error_set(e, HDLM_EINVAL,
                     "tokenizer: unknown tokenizer '%s', expected bytes, text8, gpt2 or bpe:DIR",
                     name ? name : "(null)");
}

int tokenizer_init_kind(tokenizer *t, int kind, error *e) {
    HDLM_ASSERT(t);
    switch (kind) {
    case TOKENIZER_BYTES:
        *t = (tokenizer){.kind = kind, .vocab = 256, .eot = -1};
        return HDLM_OK;
    case TOKENIZER_TEXT8:
        *t = (tokenizer){.kind = kind, .vocab = 27, .eot = -1};
        return HDLM_OK;
    case TOKENIZER_GPT2: {
        const bpe *b;
        int rc = registry_get(TOKENIZER_GPT2, NULL, &b, e);
        if (rc < 0) return rc;
        init_bpe(t, kind, b);
        return HDLM_OK;
    }
    default:
        return error_set(e, HDLM_EINVAL,
                         "tokenizer: unknown tokenizer kind %d, expected %d (bytes), %d (text8) or "
                         "%d (gpt2)",
                         kind, TOKENIZER_BYTES, TOKENIZER_TEXT8, TOKENIZER_GPT2);
    }
}

const char *tokenizer_name(int kind) {
    switch (kind) {
    case TOKENIZER_BYTES:
        return "bytes";
    case TOKENIZER_TEXT8:
        return "text8";
    case TOKENIZER_GPT2:
        return "gpt2";
    case TOKENIZER_BPE:
        return "bpe";
    default:
        return "unknown";
    }
}

const char *tokenizer_label(const tokenizer *t) {
    return t->bpe ? bpe_name(t->bpe) : tokenizer_name(t->kind);
}

/* the fixed tokenizers' identities: the SHA-256 of their names */
static char fixed_sha[2][65];
static pthread_once_t fixed_once = PTHREAD_ONCE_INIT;

static void fixed_sha_init(void) {
    sha256_hex("bytes", 5, fixed_sha[0]);
    sha256_hex("text8", 5, fixed_sha[1]);
}

const char *tokenizer_sha256(const tokenizer *t) {
    if (t->bpe) return bpe_sha256(t->bpe);
    pthread_once(&fixed_once, fixed_sha_init);
    return t->kind == TOKENIZER_TEXT8   ? fixed_sha[1]
           : t->kind == TOKENIZER_BYTES ? fixed_sha[0]
                                        : "";
}

void tokenizer_file_tag(const tokenizer *t, char out[32]) {
    if (t->kind == TOKENIZER_BPE)
        snprintf(out, 32, "bpe-%.12s", tokenizer_sha256(t));
    else
        snprintf(out, 32, "%s", tokenizer_name(t->kind));
}

/* ---------------------------------------------------------------- encoding */

/* text8: letters keep their identity (case folded), everything else is a word separator. A run of
 * separators, however long and whatever bytes it is made of (a multi-byte UTF-8 character
 * included), becomes one space, and nothing is emitted before the first letter. */
static int64_t text8_encode(const unsigned char *s, size_t n, int32_t *out) {
    int64_t k = 0;
    int pending_space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = s[i];
        if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch - 'A' + 'a');
        if (ch >= 'a' && ch <= 'z') {
            if (pending_space && k > 0) out[k++] = 0;
            pending_space = 0;
            out[k++] = 1 + (ch - 'a');
        } else {
            pending_space = 1;
        }
    }
    /* A trailing separator run is kept as one space, as the text8 convention ends words that way.
     */
    if (pending_space && k > 0) out[k++] = 0;
    return k;
}

/* One document with the fixed tokenizers, or with a BPE through an encoder x. */
static int64_t encode_one(const tokenizer *t, bpe_encoder *x, const char *text, size_t n,
                          int32_t *out, error *e) {
    const unsigned char *s = (const unsigned char *)text;
    if (t->kind == TOKENIZER_TEXT8) return text8_encode(s, n, out);
    if (t->bpe) return bpe_encode(x, text, n, out, e);
    HDLM_ASSERT(t->kind == TOKENIZER_BYTES);
    for (size_t i = 0; i < n; i++)
        out[i] = s[i];
    return (int64_t)n;
}

int64_t tokenizer_encode(const tokenizer *t, const char *text, size_t n, int32_t *out) {
    return tokenizer_encode_docs(t, text, n, TOKENIZER_DOCS_NONE, out, NULL, NULL);
}

static int blank_line(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\f\v", s[i]) || !s[i]) return 0;
    return 1;
}

int64_t tokenizer_encode_docs(const tokenizer *t, const char *text, size_t n, int docs,
                              int32_t *out, int64_t *n_docs, error *e) {
    HDLM_ASSERT(t && (text || n == 0) && (out || n == 0));
    if (n_docs) *n_docs = 0;
    if (docs == TOKENIZER_DOCS_BLANK && t->eot < 0)
        return error_set(e, HDLM_EINVAL,
                         "tokenizer %s has no end-of-text token; document breaks need gpt2 or "
                         "bpe:DIR (or docs = none)",
                         tokenizer_label(t));
    bpe_encoder *x = NULL;
    if (t->bpe) {
        int rc = bpe_encoder_new(t->bpe, &x, e);
        if (rc < 0) return rc;
    }
    int64_t k = 0, nd = 0;
    if (docs != TOKENIZER_DOCS_BLANK) {
        k = encode_one(t, x, text, n, out, e);
        nd = n > 0;
    } else {
        /* documents: maximal runs of non-blank lines, each line with its newline */
        size_t at = 0, doc = 0;
        int in_doc = 0;
        while (at <= n && k >= 0) {
            const char *nl = at < n ? memchr(text + at, '\n', n - at) : NULL;
            size_t end = at < n ? (nl ? (size_t)(nl - text) + 1 : n) : n;
            int blank = at == n || blank_line(text + at, end - at - (nl != NULL));
            if (!blank && !in_doc) {
                in_doc = 1;
                doc = at;
            }
            if (blank && in_doc) { /* a document ends: its text, then the break if more follow */
                if (nd++) out[k++] = t->eot;
                int64_t m = encode_one(t, x, text + doc, at - doc, out + k, e);
                k = m < 0 ? m : k + m;
                in_doc = 0;
            }
            if (at == n) break;
            at = end;
        }
    }
    bpe_encoder_free(x);
    if (k >= 0 && n_docs) *n_docs = nd;
    return k;
}

/* ---------------------------------------------------------------- decoding */

size_t tokenizer_decode_cap(const tokenizer *t, size_t n) {
    size_t per = t->bpe ? bpe_max_token_len(t->bpe) : 1;
    return n * (per > 3 ? per : 3) + 1;
}

int tokenizer_unit_bytes(const tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->vocab) return 0;
    if (id == t->eot) return 1;
    if (!t->bpe) return 1;
    size_t len;
    bpe_token(t->bpe, id, &len);
    return (int)len;
}

size_t tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    HDLM_ASSERT(t && (ids || n == 0) && (out || cap == 0));
    if (cap == 0) return 0;
    static const char block[] = "\xe2\x96\x88"; /* U+2588 FULL BLOCK in UTF-8 */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        const char *p;
        size_t len = 1;
        char one;
        if (t->kind == TOKENIZER_TEXT8) {
            one = id == 0 ? ' ' : (id >= 1 && id <= 26) ? (char)('a' + id - 1) : '_';
            p = &one;
        } else if (t->bpe) {
            p = (const char *)bpe_token(t->bpe, id, &len);
            if (!p) p = block, len = 3;
        } else if (id >= 0 && id <= 255) {
            one = (char)(unsigned char)id;
            p = &one;
        } else {
            p = block, len = 3;
        }
        /* a token is written whole or not at all, so truncation never leaves half a character */
        if (w + len > cap - 1) break;
        memcpy(out + w, p, len);
        w += len;
    }
    out[w] = '\0';
    return w;
}
