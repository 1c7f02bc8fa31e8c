/* Byte-level BPE: loading GPT-2's two files into flat tables, the merge loop and the word cache.
 * Tables: token bytes in one arena (id -> bytes), an open-addressing map token bytes -> id (for the
 * files' merge lines and the whole-piece shortcut) and one (left id, right id) -> (rank, result)
 * for the merge loop. The merge loop keeps the piece as a linked list of symbols and the candidate
 * merges in a binary heap keyed by (rank, position), so a piece of n bytes costs O(n log n) —
 * a 100 kB run of one letter is as fine as a word. Entries are invalidated lazily: a popped entry
 * counts only when the pair at its position still has its rank (a rank names one pair). */
#include "data/bpe.h"

#include "base/json.h"
#include "base/sha256.h"
#include "data/pretok.h"
#include "data/tokfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char eot_text[] = "<|endoftext|>";

/* ---------------------------------------------------------------- byte <-> character mapping */

static int printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
}

uint32_t bpe_byte_to_char(unsigned char b) {
    if (printable(b)) return b;
    uint32_t n = 0; /* the non-printable bytes take U+0100.. in byte order */
    for (unsigned c = 0; c < b; c++)
        n += !printable(c);
    return 256 + n;
}

int bpe_char_to_byte(uint32_t cp) {
    if (cp < 256) return printable(cp) ? (int)cp : -1;
    uint32_t k = cp - 256, n = 0;
    for (unsigned c = 0; c < 256; c++)
        if (!printable(c) && n++ == k) return (int)c;
    return -1;
}

unsigned char bpe_byte_at(int k) {
    HDLM_ASSERT(k >= 0 && k < 256);
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (unsigned c = 0; c < 256; c++)
            if (printable(c) == !pass && n++ == k) return (unsigned char)c;
    HDLM_ASSERT(0);
    return 0;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t mix(uint64_t h) {
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        p += 8, n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return mix((h ^ w) * 0x94d049bb133111ebull);
}

static uint64_t pair_key(int32_t l, int32_t r) {
    return (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

/* ---------------------------------------------------------------- the vocabulary */

struct bpe {
    int32_t vocab, eot, n_merges;
    unsigned char *bytes; /* all tokens' bytes, id order */
    size_t *off;          /* (vocab + 1) token id's bytes are bytes[off[id] .. off[id+1]) */
    size_t max_len;
    int32_t byte_id[256];
    int32_t *tmap; /* (tmask + 1) token bytes -> id, -1 empty */
    size_t tmask;
    uint64_t *pkey; /* (pmask + 1) pair -> slot; UINT64_MAX empty */
    int32_t *prank, *pres;
    size_t pmask;
    int32_t *mleft, *mright, *mres; /* (n_merges) */
    char *name;
    char sha[65];
};

int32_t bpe_vocab(const bpe *b) {
    return b->vocab;
}
int32_t bpe_eot(const bpe *b) {
    return b->eot;
}
int32_t bpe_n_merges(const bpe *b) {
    return b->n_merges;
}
const char *bpe_name(const bpe *b) {
    return b->name;
}
const char *bpe_sha256(const bpe *b) {
    return b->sha;
}
size_t bpe_max_token_len(const bpe *b) {
    return b->max_len;
}
int32_t bpe_byte_id(const bpe *b, unsigned char byte) {
    return b->byte_id[byte];
}

const unsigned char *bpe_token(const bpe *b, int32_t id, size_t *len) {
    if (id < 0 || id >= b->vocab) return NULL;
    *len = b->off[id + 1] - b->off[id];
    return b->bytes + b->off[id];
}

void bpe_merge(const bpe *b, int32_t rank, int32_t *left, int32_t *right, int32_t *result) {
    HDLM_ASSERT(rank >= 0 && rank < b->n_merges);
    *left = b->mleft[rank], *right = b->mright[rank], *result = b->mres[rank];
}

/* id of the token with these bytes (the end-of-text token excluded), or -1 */
static int32_t token_find(const bpe *b, const unsigned char *p, size_t n) {
    for (size_t s = hash_bytes(p, n) & b->tmask;; s = (s + 1) & b->tmask) {
        int32_t id = b->tmap[s];
        if (id < 0) return -1;
        if (b->off[id + 1] - b->off[id] == n && !memcmp(b->bytes + b->off[id], p, n)) return id;
    }
}

/* slot of pair (l, r) in the pair map, or -1 */
static inline int64_t pair_find(const bpe *b, int32_t l, int32_t r) {
    uint64_t k = pair_key(l, r);
    for (size_t s = mix(k) & b->pmask;; s = (s + 1) & b->pmask) {
        if (b->pkey[s] == k) return (int64_t)s;
        if (b->pkey[s] == UINT64_MAX) return -1;
    }
}

void bpe_free(bpe *b) {
    if (!b) return;
    free(b->bytes);
    free(b->off);
    free(b->tmap);
    free(b->pkey);
    free(b->prank);
    free(b->pres);
    free(b->mleft);
    free(b->mright);
    free(b->mres);
    free(b->name);
    free(b);
}

/* Decodes a token as written in the files (UTF-8 of mapped characters) into bytes; returns the
 * number of bytes, or -1 with *bad the offending code point (or 0xffffffff for invalid UTF-8). */
static long unmap(const char *s, size_t n, unsigned char *out, uint32_t *bad) {
    const unsigned char *u = (const unsigned char *)s;
    long w = 0;
    for (size_t i = 0; i < n;) {
        size_t sub, len = pretok_utf8_char(u + i, n - i, &sub);
        if (!len) {
            *bad = 0xffffffffu;
            return -1;
        }
        uint32_t cp = len == 1   ? u[i]
                      : len == 2 ? (uint32_t)(u[i] & 0x1f) << 6 | (u[i + 1] & 0x3f)
                      : len == 3
                          ? (uint32_t)(u[i] & 0x0f) << 12 | (uint32_t)(u[i + 1] & 0x3f) << 6 |
                                (u[i + 2] & 0x3f)
                          : (uint32_t)(u[i] & 0x07) << 18 | (uint32_t)(u[i + 1] & 0x3f) << 12 |
                                (uint32_t)(u[i + 2] & 0x3f) << 6 | (u[i + 3] & 0x3f);
        int byte = bpe_char_to_byte(cp);
        if (byte < 0) {
            *bad = cp;
            return -1;
        }
        out[w++] = (unsigned char)byte;
        i += len;
    }
    return w;
}

static void describe_bad(uint32_t bad, char *buf, size_t cap) {
    if (bad == 0xffffffffu)
        snprintf(buf, cap, "invalid UTF-8");
    else
        snprintf(buf, cap, "character U+%04X, which no byte maps to", (unsigned)bad);
}

static int read_file(const char *path, char **buf, size_t *len, error *e) {
    struct stat st;
    *buf = NULL;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return error_set(e, HDLM_EIO,
                         "%s: not found (a BPE directory holds encoder.json and vocab.bpe)", path);
    unsigned char *p;
    int rc = tokfile_read_all(path, &p, len, e);
    *buf = (char *)p;
    return rc;
}

static int load_encoder(bpe *b, const char *path, error *e) {
    char *text;
    size_t n;
    int rc = read_file(path, &text, &n, e);
    if (rc < 0) return rc;
    json_value *root = NULL;
    rc = json_parse(text, n, &root, e);
    free(text);
    if (rc < 0) return error_wrap(e, "%s", path);
    if (json_type(root) != JSON_OBJECT || json_len(root) < 256) {
        rc = error_set(e, HDLM_EINVAL,
                       "%s: expected an object of >= 256 token -> id members, found %s with %zu",
                       path, json_type_name(json_type(root)), json_len(root));
        json_free(root);
        return rc;
    }
    size_t V = json_len(root);
    if (V > (1u << 24)) {
        json_free(root);
        return error_set(e, HDLM_EINVAL, "%s: %zu tokens, at most %u supported", path, V, 1u << 24);
    }
    b->vocab = (int32_t)V;
    b->eot = -1;
    size_t *lens = calloc(V, sizeof *lens), total = 0;
    b->off = malloc((V + 1) * sizeof *b->off);
    const char **keys = calloc(V, sizeof *keys); /* key of each id (NULL: not seen yet) */
    size_t *klens = calloc(V, sizeof *klens);
    if (!lens || !b->off || !keys || !klens) {
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < V; i++) {
        const json_value *v = json_value_at(root, i);
        const char *k = json_key_at(root, i);
        if (!json_is_int(v) || json_int(v) < 0 || json_int(v) >= (int64_t)V) {
            rc = error_set(e, HDLM_EINVAL,
                           "%s: token \"%.40s\" has a bad id, expected an integer in 0..%zu", path,
                           k, V - 1);
            goto done;
        }
        size_t id = (size_t)json_int(v);
        if (keys[id]) {
            rc = error_set(e, HDLM_EINVAL, "%s: id %zu is given to both \"%.40s\" and \"%.40s\"",
                           path, id, keys[id], k);
            goto done;
        }
        keys[id] = k;
        klens[id] = json_key_len(root, i);
        total += klens[id]; /* unmapped bytes are never longer than their characters */
    }
    b->bytes = malloc(total ? total : 1);
    if (!b->bytes) {
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t w = 0;
    for (size_t id = 0; id < V; id++) {
        b->off[id] = w;
        if (klens[id] == sizeof eot_text - 1 && !memcmp(keys[id], eot_text, klens[id])) {
            b->eot = (int32_t)id;
            memcpy(b->bytes + w, eot_text, klens[id]);
            w += klens[id];
            continue;
        }
        uint32_t bad;
        long m = unmap(keys[id], klens[id], b->bytes + w, &bad);
        if (m <= 0) {
            char why[96];
            describe_bad(bad, why, sizeof why);
            rc = error_set(e, HDLM_EINVAL, "%s: token \"%.40s\" (id %zu): %s", path, keys[id], id,
                           m == 0 ? "empty token" : why);
            goto done;
        }
        w += (size_t)m;
        if ((size_t)m > b->max_len) b->max_len = (size_t)m;
    }
    b->off[V] = w;
    if (b->max_len < sizeof eot_text - 1 && b->eot >= 0) b->max_len = sizeof eot_text - 1;
    /* the token map, and each byte's token */
    b->tmask = pow2_at_least(2 * V) - 1;
    b->tmap = malloc((b->tmask + 1) * sizeof *b->tmap);
    if (!b->tmap) {
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    memset(b->tmap, 0xff, (b->tmask + 1) * sizeof *b->tmap);
    for (int i = 0; i < 256; i++)
        b->byte_id[i] = -1;
    for (size_t id = 0; id < V; id++) {
        if ((int32_t)id == b->eot) continue;
        const unsigned char *p = b->bytes + b->off[id];
        size_t len = b->off[id + 1] - b->off[id];
        int32_t other = token_find(b, p, len);
        if (other >= 0) {
            rc = error_set(e, HDLM_EINVAL, "%s: ids %d and %zu are the same token \"%.40s\"", path,
                           (int)other, id, keys[id]);
            goto done;
        }
        size_t s = hash_bytes(p, len) & b->tmask;
        while (b->tmap[s] >= 0)
            s = (s + 1) & b->tmask;
        b->tmap[s] = (int32_t)id;
        if (len == 1) b->byte_id[p[0]] = (int32_t)id;
    }
    for (int i = 0; i < 256; i++)
        if (b->byte_id[i] < 0) {
            rc = error_set(e, HDLM_EINVAL,
                           "%s: no token for byte 0x%02x (written U+%04X), expected all 256 bytes",
                           path, i, (unsigned)bpe_byte_to_char((unsigned char)i));
            goto done;
        }
    rc = HDLM_OK;
done:
    free(lens);
    free(keys);
    free(klens);
    json_free(root);
    return rc;
}

static int load_merges(bpe *b, const char *path, error *e) {
    char *text;
    size_t n;
    int rc = read_file(path, &text, &n, e);
    if (rc < 0) return rc;
    size_t lines = 1;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    b->mleft = malloc(lines * sizeof *b->mleft);
    b->mright = malloc(lines * sizeof *b->mright);
    b->mres = malloc(lines * sizeof *b->mres);
    b->pmask = pow2_at_least(2 * lines) - 1;
    b->pkey = malloc((b->pmask + 1) * sizeof *b->pkey);
    b->prank = malloc((b->pmask + 1) * sizeof *b->prank);
    b->pres = malloc((b->pmask + 1) * sizeof *b->pres);
    unsigned char *defined = calloc((size_t)b->vocab, 1);
    unsigned char *tmp = malloc(n + 1);
    if (!b->mleft || !b->mright || !b->mres || !b->pkey || !b->prank || !b->pres || !defined ||
        !tmp) {
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    memset(b->pkey, 0xff, (b->pmask + 1) * sizeof *b->pkey);
    for (int i = 0; i < 256; i++)
        defined[b->byte_id[i]] = 1;
    size_t line = 0;
    for (size_t at = 0; at < n;) {
        size_t end = at;
        while (end < n && text[end] != '\n')
            end++;
        line++;
        const char *s = text + at;
        size_t len = end - at;
        at = end + 1;
        if (len && s[len - 1] == '\r') len--;
        if (len == 0 || (line == 1 && len >= 9 && !memcmp(s, "#version:", 9))) continue;
        const char *sp = memchr(s, ' ', len);
        if (!sp || sp == s || sp == s + len - 1 ||
            memchr(sp + 1, ' ', (size_t)(s + len - sp - 1))) {
            rc = error_set(e, HDLM_EINVAL,
                           "%s: line %zu: expected two tokens \"A B\", found \"%.*s\"", path, line,
                           (int)(len < 60 ? len : 60), s);
            goto done;
        }
        int32_t ids[2] = {-1, -1};
        const char *part[2] = {s, sp + 1};
        size_t plen[2] = {(size_t)(sp - s), (size_t)(s + len - sp - 1)};
        long m[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            uint32_t bad;
            m[k] = unmap(part[k], plen[k], tmp + (k ? m[0] : 0), &bad);
            if (m[k] < 0) {
                char why[96];
                describe_bad(bad, why, sizeof why);
                rc = error_set(e, HDLM_EINVAL, "%s: line %zu: token \"%.*s\": %s", path, line,
                               (int)plen[k], part[k], why);
                goto done;
            }
            ids[k] = token_find(b, tmp + (k ? m[0] : 0), (size_t)m[k]);
            if (ids[k] >= 0 && defined[ids[k]]) continue;
            if (ids[k] < 0)
                rc = error_set(e, HDLM_EINVAL,
                               "%s: line %zu: token \"%.*s\" is not in "
                               "encoder.json",
                               path, line, (int)plen[k], part[k]);
            else if (!defined[ids[k]])
                rc = error_set(e, HDLM_EINVAL,
                               "%s: line %zu: token \"%.*s\" is used before a "
                               "merge line makes it (merges must come in training order)",
                               path, line, (int)plen[k], part[k]);
            goto done;
        }
        int32_t res = token_find(b, tmp, (size_t)(m[0] + m[1]));
        if (res < 0) {
            rc = error_set(e, HDLM_EINVAL,
                           "%s: line %zu: the merge \"%.*s\" makes \"%.*s%.*s\", "
                           "which is not in encoder.json",
                           path, line, (int)len, s, (int)plen[0], part[0], (int)plen[1], part[1]);
            goto done;
        }
        if (pair_find(b, ids[0], ids[1]) >= 0) {
            rc = error_set(e, HDLM_EINVAL, "%s: line %zu: the merge \"%.*s\" is listed twice", path,
                           line, (int)len, s);
            goto done;
        }
        int32_t r = b->n_merges++;
        b->mleft[r] = ids[0], b->mright[r] = ids[1], b->mres[r] = res;
        defined[res] = 1;
        uint64_t k = pair_key(ids[0], ids[1]);
        size_t slot = mix(k) & b->pmask;
        while (b->pkey[slot] != UINT64_MAX)
            slot = (slot + 1) & b->pmask;
        b->pkey[slot] = k, b->prank[slot] = r, b->pres[slot] = res;
    }
    rc = HDLM_OK;
done:
    free(defined);
    free(tmp);
    free(text);
    return rc;
}

static void put32(sha256_ctx *c, uint32_t v) {
    unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    sha256_update(c, p, 4);
}

static void vocab_hash(bpe *b) {
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, "hdlm-bpe-1\n", 11);
    put32(&c, (uint32_t)b->vocab);
    for (int32_t id = 0; id < b->vocab; id++) {
        put32(&c, (uint32_t)(b->off[id + 1] - b->off[id]));
        sha256_update(&c, b->bytes + b->off[id], b->off[id + 1] - b->off[id]);
    }
    put32(&c, (uint32_t)b->n_merges);
    for (int32_t r = 0; r < b->n_merges; r++) {
        put32(&c, (uint32_t)b->mleft[r]);
        put32(&c, (uint32_t)b->mright[r]);
    }
    put32(&c, b->eot < 0 ? 0xffffffffu : (uint32_t)b->eot);
    uint8_t d[32];
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++)
        snprintf(b->sha + 2 * i, 3, "%02x", d[i]);
}

int bpe_load(const char *dir, const char *name, bpe **out, error *e) {
    HDLM_ASSERT(dir && out);
    *out = NULL;
    bpe *b = calloc(1, sizeof *b);
    if (!b) return error_set(e, HDLM_ENOMEM, "bpe: out of memory");
    b->name = strdup(name ? name : dir);
    size_t plen = strlen(dir) + 32;
    char *path = malloc(plen);
    if (!b->name || !path) {
        free(path);
        bpe_free(b);
        return error_set(e, HDLM_ENOMEM, "bpe: out of memory");
    }
    snprintf(path, plen, "%s/encoder.json", dir);
    int rc = load_encoder(b, path, e);
    if (rc == HDLM_OK) {
        snprintf(path, plen, "%s/vocab.bpe", dir);
        rc = load_merges(b, path, e);
    }
    free(path);
    if (rc != HDLM_OK) {
        bpe_free(b);
        return rc;
    }
    vocab_hash(b);
    *out = b;
    return HDLM_OK;
}

/* ---------------------------------------------------------------- encoding */

typedef struct heap_ent {
    int32_t rank, pos;
} heap_ent;

typedef struct cache_slot {
    uint64_t h;
    uint32_t boff, blen, ioff, n; /* blen 0: empty */
} cache_slot;

#define CACHE_MAX_PIECE 256 /* longer pieces are rare and merged every time */
#define CACHE_MAX_SLOTS (1 << 20)

struct bpe_encoder {
    const bpe *b;
    pretok *pt;
    int32_t *ids, *nxt, *prv; /* (cap) */
    heap_ent *heap;           /* (3 * cap) */
    size_t cap;
    cache_slot *slots;
    size_t smask, used;
    unsigned char *cbytes;
    size_t cb_len, cb_cap;
    int32_t *cids;
    size_t ci_len, ci_cap;
};

int bpe_encoder_new(const bpe *b, bpe_encoder **out, error *e) {
    *out = NULL;
    bpe_encoder *x = calloc(1, sizeof *x);
    if (!x) return error_set(e, HDLM_ENOMEM, "bpe: out of memory");
    x->b = b;
    int rc = pretok_new(&x->pt, e);
    if (rc < 0) {
        free(x);
        return rc;
    }
    *out = x;
    return HDLM_OK;
}

void bpe_encoder_free(bpe_encoder *x) {
    if (!x) return;
    pretok_free(x->pt);
    free(x->ids);
    free(x->nxt);
    free(x->prv);
    free(x->heap);
    free(x->slots);
    free(x->cbytes);
    free(x->cids);
    free(x);
}

static int reserve_scratch(bpe_encoder *x, size_t n) {
    if (n <= x->cap) return 0;
    size_t c = pow2_at_least(n);
    int32_t *a = realloc(x->ids, c * sizeof *a);
    if (a) x->ids = a;
    int32_t *bb = realloc(x->nxt, c * sizeof *bb);
    if (bb) x->nxt = bb;
    int32_t *d = realloc(x->prv, c * sizeof *d);
    if (d) x->prv = d;
    heap_ent *h = realloc(x->heap, 3 * c * sizeof *h);
    if (h) x->heap = h;
    if (!a || !bb || !d || !h) return -1;
    x->cap = c;
    return 0;
}

static inline int heap_less(heap_ent a, heap_ent b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static inline void heap_push(heap_ent *h, size_t *n, heap_ent v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(v, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline heap_ent heap_pop(heap_ent *h, size_t *n) {
    heap_ent top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static inline void push_pair(const bpe *b, heap_ent *h, size_t *hn, const int32_t *ids, int32_t i,
                             int32_t j) {
    int64_t s = pair_find(b, ids[i], ids[j]);
    if (s >= 0) heap_push(h, hn, (heap_ent){b->prank[s], i});
}

int64_t bpe_encode_piece(bpe_encoder *x, const unsigned char *p, size_t n, int32_t *out) {
    const bpe *b = x->b;
    if (n == 0) return 0;
    if (n == 1) {
        out[0] = b->byte_id[p[0]];
        return 1;
    }
    if (n > INT32_MAX / 4 || reserve_scratch(x, n)) return HDLM_ENOMEM;
    int32_t *ids = x->ids, *nxt = x->nxt, *prv = x->prv;
    heap_ent *h = x->heap;
    size_t hn = 0;
    int32_t m = (int32_t)n;
    for (int32_t i = 0; i < m; i++) {
        ids[i] = b->byte_id[p[i]];
        nxt[i] = i + 1 < m ? i + 1 : -1;
        prv[i] = i - 1;
    }
    for (int32_t i = 0; i + 1 < m; i++)
        push_pair(b, h, &hn, ids, i, i + 1);
    while (hn) {
        heap_ent t = heap_pop(h, &hn);
        int32_t i = t.pos;
        if (ids[i] < 0) continue; /* merged into its left neighbour since */
        int32_t j = nxt[i];
        if (j < 0) continue;
        int64_t s = pair_find(b, ids[i], ids[j]);
        if (s < 0 || b->prank[s] != t.rank) continue; /* the pair here changed since */
        ids[i] = b->pres[s];
        ids[j] = -1;
        nxt[i] = nxt[j];
        if (nxt[j] >= 0) prv[nxt[j]] = i;
        if (prv[i] >= 0) push_pair(b, h, &hn, ids, prv[i], i);
        if (nxt[i] >= 0) push_pair(b, h, &hn, ids, i, nxt[i]);
    }
    int64_t k = 0;
    for (int32_t i = 0; i >= 0; i = nxt[i])
        out[k++] = ids[i];
    return k;
}

/* ---- the word cache: piece bytes -> ids, per encoder ---- */

static void cache_reset(bpe_encoder *x) {
    if (x->slots) memset(x->slots, 0, (x->smask + 1) * sizeof *x->slots);
    x->used = 0;
    x->cb_len = x->ci_len = 0;
}

static const cache_slot *cache_get(const bpe_encoder *x, const unsigned char *p, size_t n,
                                   uint64_t h) {
    if (!x->slots) return NULL;
    for (size_t s = h & x->smask;; s = (s + 1) & x->smask) {
        const cache_slot *c = &x->slots[s];
        if (!c->blen) return NULL;
        if (c->h == h && c->blen == n && !memcmp(x->cbytes + c->boff, p, n)) return c;
    }
}

/* Best effort: a failed allocation only means the piece is not cached. */
static void cache_put(bpe_encoder *x, const unsigned char *p, size_t n, uint64_t h,
                      const int32_t *ids, int64_t k) {
    if (!x->slots || 2 * (x->used + 1) > x->smask + 1) {
        size_t ns = x->slots ? 2 * (x->smask + 1) : 1 << 14;
        if (ns > CACHE_MAX_SLOTS) {
            cache_reset(x); /* full: start over rather than grow without bound */
        } else {
            cache_slot *sl = calloc(ns, sizeof *sl);
            if (!sl) return;
            for (size_t i = 0; x->slots && i <= x->smask; i++) {
                cache_slot c = x->slots[i];
                if (!c.blen) continue;
                size_t s = c.h & (ns - 1);
                while (sl[s].blen)
                    s = (s + 1) & (ns - 1);
                sl[s] = c;
            }
            free(x->slots);
            x->slots = sl;
            x->smask = ns - 1;
        }
    }
    if (x->cb_len + n > x->cb_cap) {
        size_t c = pow2_at_least(x->cb_len + n + 4096);
        unsigned char *q = realloc(x->cbytes, c);
        if (!q) return;
        x->cbytes = q, x->cb_cap = c;
    }
    if (x->ci_len + (size_t)k > x->ci_cap) {
        size_t c = pow2_at_least(x->ci_len + (size_t)k + 1024);
        int32_t *q = realloc(x->cids, c * sizeof *q);
        if (!q) return;
        x->cids = q, x->ci_cap = c;
    }
    size_t s = h & x->smask;
    while (x->slots[s].blen)
        s = (s + 1) & x->smask;
    x->slots[s] =
        (cache_slot){h, (uint32_t)x->cb_len, (uint32_t)n, (uint32_t)x->ci_len, (uint32_t)k};
    memcpy(x->cbytes + x->cb_len, p, n);
    memcpy(x->cids + x->ci_len, ids, (size_t)k * sizeof *ids);
    x->cb_len += n;
    x->ci_len += (size_t)k;
    x->used++;
}

typedef struct encode_ctx {
    bpe_encoder *x;
    int32_t *out;
    int64_t k;
} encode_ctx;

static int encode_one(void *ud, const unsigned char *p, size_t n) {
    encode_ctx *c = ud;
    bpe_encoder *x = c->x;
    int32_t *out = c->out + c->k;
    if (n == 1) {
        out[0] = x->b->byte_id[p[0]];
        c->k++;
        return 0;
    }
    uint64_t h = 0;
    if (n <= CACHE_MAX_PIECE) {
        h = hash_bytes(p, n);
        const cache_slot *s = cache_get(x, p, n, h);
        if (s) {
            memcpy(out, x->cids + s->ioff, s->n * sizeof *out);
            c->k += s->n;
            return 0;
        }
    }
    int64_t k;
    int32_t whole = token_find(x->b, p, n);
    if (whole >= 0) {
        out[0] = whole, k = 1;
    } else {
        k = bpe_encode_piece(x, p, n, out);
        if (k < 0) return (int)k;
    }
    if (n <= CACHE_MAX_PIECE) cache_put(x, p, n, h, out, k);
    c->k += k;
    return 0;
}

int64_t bpe_encode(bpe_encoder *x, const char *text, size_t n, int32_t *out, error *e) {
    encode_ctx c = {x, out, 0};
    int rc = pretok_split(x->pt, text, n, encode_one, &c, e);
    if (rc == HDLM_ENOMEM) return error_set(e, rc, "bpe: out of memory encoding %zu bytes", n);
    if (rc < 0) return rc;
    return c.k;
}

/* ---------------------------------------------------------------- writing */

static int put_mapped(json_buf *jb, const unsigned char *p, size_t n) {
    char tmp[8];
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = bpe_byte_to_char(p[i]);
        size_t w = 0;
        if (cp < 0x80) {
            tmp[w++] = (char)cp;
        } else { /* all mapped characters are below U+0800 */
            tmp[w++] = (char)(0xc0 | cp >> 6);
            tmp[w++] = (char)(0x80 | (cp & 0x3f));
        }
        json_buf_rawn(jb, tmp, w);
    }
    return jb->failed ? HDLM_ENOMEM : HDLM_OK;
}

int bpe_write(const char *dir, int32_t vocab, const unsigned char *const *tokens,
              const size_t *lens, int32_t n_merges, const int32_t *left, const int32_t *right,
              int32_t eot, error *e) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return error_set(e, HDLM_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    json_buf enc = {0}, merges = {0}, one = {0};
    json_buf_raw(&enc, "{");
    for (int32_t id = 0; id < vocab; id++) {
        if (id) json_buf_raw(&enc, ", ");
        json_buf_free(&one);
        if (id == eot)
            json_buf_raw(&one, eot_text);
        else
            put_mapped(&one, tokens[id], lens[id]);
        json_buf_strn(&enc, one.data ? one.data : "", one.len);
        json_buf_raw(&enc, ": ");
        json_buf_int(&enc, id);
    }
    json_buf_raw(&enc, "}");
    json_buf_raw(&merges, "#version: 0.2\n");
    for (int32_t r = 0; r < n_merges; r++) {
        put_mapped(&merges, tokens[left[r]], lens[left[r]]);
        json_buf_raw(&merges, " ");
        put_mapped(&merges, tokens[right[r]], lens[right[r]]);
        json_buf_raw(&merges, "\n");
    }
    int rc = HDLM_OK;
    if (enc.failed || merges.failed || one.failed)
        rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", dir);
    size_t plen = strlen(dir) + 32;
    char *path = malloc(plen);
    if (rc == HDLM_OK && !path) rc = error_set(e, HDLM_ENOMEM, "%s: out of memory", dir);
    if (rc == HDLM_OK) {
        snprintf(path, plen, "%s/encoder.json", dir);
        rc = tokfile_write_all(path, NULL, 0, enc.data, enc.len, e);
    }
    if (rc == HDLM_OK) {
        snprintf(path, plen, "%s/vocab.bpe", dir);
        rc = tokfile_write_all(path, NULL, 0, merges.data, merges.len, e);
    }
    free(path);
    json_buf_free(&enc);
    json_buf_free(&merges);
    json_buf_free(&one);
    return rc;
}
