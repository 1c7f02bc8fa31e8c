/* BPE training: count distinct pieces, then merge with incremental pair counts (see bpe_train.h).
 * Words (distinct pieces) are arrays of token ids in one pool and shrink in place as merges apply.
 * Pairs live in an open-addressing map (left, right) -> pair index, with a count and the list of
 * words that held the pair when it appeared (a word may have lost it since: merging re-checks). */
#include "data/bpe_train.h"

#include "data/bpe.h"
#include "data/pretok.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* A growable array of T: `vec_push` doubles the capacity; returns -1 when out of memory. */
#define VEC_RESERVE(ptr, len, cap, need)                                                           \
    ((need) <= (cap)                                                                               \
         ? 0                                                                                       \
         : (cap = (need)*2 + 16, (ptr = realloc_or_free(ptr, (cap) * sizeof *(ptr))) ? 0 : -1))

static void *realloc_or_free(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) free(p);
    return q;
}

typedef struct word_list {
    int32_t *v;
    size_t n, cap;
} word_list;

typedef struct trainer {
    /* distinct pieces while counting: map bytes -> word */
    int32_t *wmap; /* (wmask + 1) word index, -1 empty */
    size_t wmask;
    unsigned char *wbytes; /* piece bytes, for the map */
    size_t wb_len, wb_cap;
    size_t *wboff; /* (n_words + 1) */
    int64_t *wcount;
    size_t n_words, w_cap;
    /* words as token ids */
    int32_t *syms;
    size_t *soff; /* (n_words) start in syms */
    int32_t *slen;
    int32_t *stamp; /* last merge that visited the word */
    /* tokens */
    unsigned char *tbytes;
    size_t tb_len, tb_cap;
    size_t *toff; /* (n_tokens + 1) */
    size_t to_cap;
    int32_t n_tokens;
    /* pairs */
    uint64_t *pkey;
    int32_t *pidx;
    size_t pmask, n_pairs, p_cap;
    int32_t *pa, *pb;
    int64_t *pcount;
    int32_t *ptouch; /* last merge that made the pair grow */
    word_list *pwords;
    /* heap of (count, pair) */
    int64_t *hcount;
    int32_t *hpair;
    size_t hn, h_cap;
} trainer;

static void trainer_free(trainer *t) {
    free(t->wmap);
    free(t->wbytes);
    free(t->wboff);
    free(t->wcount);
    free(t->syms);
    free(t->soff);
    free(t->slen);
    free(t->stamp);
    free(t->tbytes);
    free(t->toff);
    free(t->pkey);
    free(t->pidx);
    free(t->pa);
    free(t->pb);
    free(t->pcount);
    free(t->ptouch);
    for (size_t i = 0; i < t->n_pairs; i++)
        free(t->pwords[i].v);
    free(t->pwords);
    free(t->hcount);
    free(t->hpair);
}

/* ---- counting pieces ---- */

static int wmap_grow(trainer *t) {
    size_t ns = t->wmap ? 2 * (t->wmask + 1) : 1 << 16;
    int32_t *m = malloc(ns * sizeof *m);
    if (!m) return -1;
    memset(m, 0xff, ns * sizeof *m);
    for (size_t w = 0; w < t->n_words; w++) {
        size_t s = hash_bytes(t->wbytes + t->wboff[w], t->wboff[w + 1] - t->wboff[w]) & (ns - 1);
        while (m[s] >= 0)
            s = (s + 1) & (ns - 1);
        m[s] = (int32_t)w;
    }
    free(t->wmap);
    t->wmap = m;
    t->wmask = ns - 1;
    return 0;
}

static int count_piece(void *ud, const unsigned char *p, size_t n) {
    trainer *t = ud;
    if (!t->wmap || 2 * (t->n_words + 1) > t->wmask + 1)
        if (wmap_grow(t)) return HDLM_ENOMEM;
    size_t s = hash_bytes(p, n) & t->wmask;
    for (;; s = (s + 1) & t->wmask) {
        int32_t w = t->wmap[s];
        if (w < 0) break;
        if (t->wboff[w + 1] - t->wboff[w] == n && !memcmp(t->wbytes + t->wboff[w], p, n)) {
            t->wcount[w]++;
            return 0;
        }
    }
    if (t->n_words >= INT32_MAX - 1) return HDLM_ENOMEM;
    if (VEC_RESERVE(t->wbytes, t->wb_len, t->wb_cap, t->wb_len + n)) return HDLM_ENOMEM;
    if (t->n_words + 2 > t->w_cap) {
        size_t c = 2 * t->w_cap + 1024;
        size_t *o = realloc(t->wboff, c * sizeof *o);
        if (!o) return HDLM_ENOMEM;
        t->wboff = o;
        int64_t *k = realloc(t->wcount, c * sizeof *k);
        if (!k) return HDLM_ENOMEM;
        t->wcount = k;
        t->w_cap = c;
    }
    if (t->n_words == 0) t->wboff[0] = 0;
    memcpy(t->wbytes + t->wb_len, p, n);
    t->wb_len += n;
    t->wmap[s] = (int32_t)t->n_words;
    t->wcount[t->n_words] = 1;
    t->wboff[++t->n_words] = t->wb_len;
    return 0;
}

/* ---- tokens and pairs ---- */

/* Appends a token: the byte `byte` (a < 0), or the concatenation of tokens a and b. The bytes
 * are copied after the arena has grown, since a and b live in it. */
static int add_token(trainer *t, int byte, int32_t a, int32_t b) {
    size_t na = a < 0 ? 1 : t->toff[a + 1] - t->toff[a],
           nb = a < 0 ? 0 : t->toff[b + 1] - t->toff[b];
    if (VEC_RESERVE(t->tbytes, t->tb_len, t->tb_cap, t->tb_len + na + nb)) return -1;
    if (VEC_RESERVE(t->toff, t->n_tokens, t->to_cap, (size_t)t->n_tokens + 2)) return -1;
    if (t->n_tokens == 0) t->toff[0] = 0;
    if (a < 0) {
        t->tbytes[t->tb_len] = (unsigned char)byte;
    } else {
        memcpy(t->tbytes + t->tb_len, t->tbytes + t->toff[a], na);
        memcpy(t->tbytes + t->tb_len + na, t->tbytes + t->toff[b], nb);
    }
    t->tb_len += na + nb;
    t->toff[++t->n_tokens] = t->tb_len;
    return 0;
}

static int cmp_token(const trainer *t, int32_t x, int32_t y) {
    if (x == y) return 0;
    size_t nx = t->toff[x + 1] - t->toff[x], ny = t->toff[y + 1] - t->toff[y];
    int c = memcmp(t->tbytes + t->toff[x], t->tbytes + t->toff[y], nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

/* 1 when pair p (count cp) is merged before pair q (count cq): higher count, then smaller bytes */
static int better(const trainer *t, int64_t cp, int32_t p, int64_t cq, int32_t q) {
    if (cp != cq) return cp > cq;
    int c = cmp_token(t, t->pa[p], t->pa[q]);
    if (!c) c = cmp_token(t, t->pb[p], t->pb[q]);
    return c < 0;
}

static int pmap_grow(trainer *t) {
    size_t ns = t->pkey ? 2 * (t->pmask + 1) : 1 << 16;
    uint64_t *k = malloc(ns * sizeof *k);
    int32_t *ix = malloc(ns * sizeof *ix);
    if (!k || !ix) {
        free(k);
        free(ix);
        return -1;
    }
    memset(k, 0xff, ns * sizeof *k);
    for (size_t p = 0; p < t->n_pairs; p++) {
        uint64_t key = (uint64_t)(uint32_t)t->pa[p] << 32 | (uint32_t)t->pb[p];
        size_t s = mix(key) & (ns - 1);
        while (k[s] != UINT64_MAX)
            s = (s + 1) & (ns - 1);
        k[s] = key, ix[s] = (int32_t)p;
    }
    free(t->pkey);
    free(t->pidx);
    t->pkey = k, t->pidx = ix, t->pmask = ns - 1;
    return 0;
}

/* The pair (a, b), created with count 0 when new; -1 when out of memory. */
static int32_t pair_get(trainer *t, int32_t a, int32_t b) {
    if (!t->pkey || 2 * (t->n_pairs + 1) > t->pmask + 1)
        if (pmap_grow(t)) return -1;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t s = mix(key) & t->pmask;
    for (; t->pkey[s] != UINT64_MAX; s = (s + 1) & t->pmask)
        if (t->pkey[s] == key) return t->pidx[s];
    if (t->n_pairs + 1 > t->p_cap) {
        size_t c = 2 * t->p_cap + 4096;
        int32_t *na = realloc(t->pa, c * sizeof *na);
        if (na) t->pa = na;
        int32_t *nb = realloc(t->pb, c * sizeof *nb);
        if (nb) t->pb = nb;
        int64_t *nc = realloc(t->pcount, c * sizeof *nc);
        if (nc) t->pcount = nc;
        int32_t *nt = realloc(t->ptouch, c * sizeof *nt);
        if (nt) t->ptouch = nt;
        word_list *nw = realloc(t->pwords, c * sizeof *nw);
        if (nw) t->pwords = nw;
        if (!na || !nb || !nc || !nt || !nw) return -1;
        t->p_cap = c;
    }
    int32_t p = (int32_t)t->n_pairs++;
    t->pa[p] = a, t->pb[p] = b, t->pcount[p] = 0, t->ptouch[p] = -1;
    t->pwords[p] = (word_list){0};
    t->pkey[s] = key, t->pidx[s] = p;
    return p;
}

static int word_list_add(word_list *l, int32_t w) {
    if (l->n && l->v[l->n - 1] == w) return 0; /* a word's pairs are added together */
    if (VEC_RESERVE(l->v, l->n, l->cap, l->n + 1)) return -1;
    l->v[l->n++] = w;
    return 0;
}

static int heap_push(trainer *t, int64_t c, int32_t p) {
    if (t->hn + 1 > t->h_cap) {
        size_t nc = 2 * t->h_cap + 4096;
        int64_t *a = realloc(t->hcount, nc * sizeof *a);
        if (a) t->hcount = a;
        int32_t *b = realloc(t->hpair, nc * sizeof *b);
        if (b) t->hpair = b;
        if (!a || !b) return -1;
        t->h_cap = nc;
    }
    size_t i = t->hn++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!better(t, c, p, t->hcount[up], t->hpair[up])) break;
        t->hcount[i] = t->hcount[up], t->hpair[i] = t->hpair[up];
        i = up;
    }
    t->hcount[i] = c, t->hpair[i] = p;
    return 0;
}

static void heap_pop(trainer *t) {
    size_t m = --t->hn;
    int64_t c = t->hcount[m];
    int32_t p = t->hpair[m];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= m) break;
        if (k + 1 < m && better(t, t->hcount[k + 1], t->hpair[k + 1], t->hcount[k], t->hpair[k]))
            k++;
        if (!better(t, t->hcount[k], t->hpair[k], c, p)) break;
        t->hcount[i] = t->hcount[k], t->hpair[i] = t->hpair[k];
        i = k;
    }
    if (m) t->hcount[i] = c, t->hpair[i] = p;
}

/* Adds d occurrences of each adjacent pair of word w; pairs with token `fresh` (the newest) are
 * indexed to w and remembered in touched[] so they reach the heap once the merge is done. */
static int add_word_pairs(trainer *t, int32_t w, int64_t d, int32_t fresh, int32_t merge,
                          int32_t **touched, size_t *nt, size_t *tcap) {
    const int32_t *s = t->syms + t->soff[w];
    for (int32_t i = 0; i + 1 < t->slen[w]; i++) {
        int32_t p = pair_get(t, s[i], s[i + 1]);
        if (p < 0) return -1;
        t->pcount[p] += d;
        if (d > 0 && (s[i] == fresh || s[i + 1] == fresh || fresh < 0)) {
            if (word_list_add(&t->pwords[p], w)) return -1;
            if (t->ptouch[p] != merge) {
                t->ptouch[p] = merge;
                if (VEC_RESERVE(*touched, *nt, *tcap, *nt + 1)) return -1;
                (*touched)[(*nt)++] = p;
            }
        }
    }
    return 0;
}

int bpe_train(const char *text, size_t n, int32_t vocab, const char *out_dir,
              bpe_train_stats *stats, error *e) {
    double t0 = now_s();
    bpe_train_stats st = {.n_bytes = (int64_t)n};
    if (stats) *stats = st;
    if (vocab < 257 || vocab > 65536)
        return error_set(e, HDLM_EINVAL,
                         "tokenizer train: vocabulary %d is outside 257..65536 (256 bytes + "
                         "merges + <|endoftext|>)",
                         (int)vocab);
    trainer t = {0};
    int32_t *touched = NULL, *mleft = NULL, *mright = NULL;
    size_t nt = 0, tcap = 0;
    const unsigned char **tok_ptr = NULL;
    size_t *tok_len = NULL;
    int rc;
    pretok *pt = NULL;
    rc = pretok_new(&pt, e);
    if (rc < 0) return rc;
    rc = pretok_split(pt, text, n, count_piece, &t, e);
    pretok_free(pt);
    if (rc == HDLM_ENOMEM) rc = error_set(e, rc, "tokenizer train: out of memory counting pieces");
    if (rc < 0) goto done;
    for (size_t w = 0; w < t.n_words; w++)
        st.n_pieces += t.wcount[w];
    st.n_words = (int64_t)t.n_words;

    /* tokens 0..255: the bytes in GPT-2's order */
    int32_t byte_id[256];
    for (int k = 0; k < 256; k++) {
        unsigned char b = bpe_byte_at(k);
        byte_id[b] = k;
        if (add_token(&t, b, -1, -1)) goto oom;
    }
    /* words as ids, and the initial pair counts */
    t.syms = malloc((t.wb_len ? t.wb_len : 1) * sizeof *t.syms);
    t.soff = malloc((t.n_words ? t.n_words : 1) * sizeof *t.soff);
    t.slen = malloc((t.n_words ? t.n_words : 1) * sizeof *t.slen);
    t.stamp = malloc((t.n_words ? t.n_words : 1) * sizeof *t.stamp);
    if (!t.syms || !t.soff || !t.slen || !t.stamp) goto oom;
    for (size_t w = 0; w < t.n_words; w++) {
        t.soff[w] = t.wboff[w];
        t.slen[w] = (int32_t)(t.wboff[w + 1] - t.wboff[w]);
        t.stamp[w] = -1;
        for (int32_t i = 0; i < t.slen[w]; i++)
            t.syms[t.soff[w] + (size_t)i] = byte_id[t.wbytes[t.wboff[w] + (size_t)i]];
        if (add_word_pairs(&t, (int32_t)w, t.wcount[w], -1, -2, &touched, &nt, &tcap)) goto oom;
    }
    for (size_t i = 0; i < nt; i++)
        if (heap_push(&t, t.pcount[touched[i]], touched[i])) goto oom;
    st.count_s = now_s() - t0;

    int32_t want = vocab - 257;
    mleft = malloc(((size_t)want + 1) * sizeof *mleft);
    mright = malloc(((size_t)want + 1) * sizeof *mright);
    if (!mleft || !mright) goto oom;
    int32_t merges = 0;
    double t1 = now_s();
    while (merges < want && t.hn) {
        int32_t p = t.hpair[0];
        int64_t c = t.hcount[0];
        heap_pop(&t);
        if (c != t.pcount[p]) { /* stale: the pair lost occurrences since it was pushed */
            if (t.pcount[p] > 0 && heap_push(&t, t.pcount[p], p)) goto oom;
            continue;
        }
        if (c <= 0) break;
        int32_t a = t.pa[p], b = t.pb[p], fresh = t.n_tokens;
        if (add_token(&t, 0, a, b)) goto oom;
        mleft[merges] = a, mright[merges] = b;
        nt = 0;
        /* the word list may grow while we walk it only for pairs with `fresh`, never for p */
        for (size_t k = 0; k < t.pwords[p].n; k++) {
            int32_t w = t.pwords[p].v[k];
            if (t.stamp[w] == merges) continue;
            t.stamp[w] = merges;
            int32_t *s = t.syms + t.soff[w], len = t.slen[w], has = 0;
            for (int32_t i = 0; i + 1 < len && !has; i++)
                has = s[i] == a && s[i + 1] == b;
            if (!has) continue;
            if (add_word_pairs(&t, w, -t.wcount[w], fresh, merges, &touched, &nt, &tcap)) goto oom;
            int32_t j = 0;
            for (int32_t i = 0; i < len; i++) {
                if (i + 1 < len && s[i] == a && s[i + 1] == b) {
                    s[j++] = fresh;
                    i++;
                } else {
                    s[j++] = s[i];
                }
            }
            t.slen[w] = j;
            if (add_word_pairs(&t, w, t.wcount[w], fresh, merges, &touched, &nt, &tcap)) goto oom;
        }
        for (size_t i = 0; i < nt; i++)
            if (t.pcount[touched[i]] > 0 && heap_push(&t, t.pcount[touched[i]], touched[i]))
                goto oom;
        merges++;
    }
    st.merge_s = now_s() - t1;
    st.n_merges = merges;
    st.vocab = 256 + merges + 1;

    /* the vocabulary: bytes, merges, <|endoftext|> last */
    tok_ptr = malloc((size_t)st.vocab * sizeof *tok_ptr);
    tok_len = malloc((size_t)st.vocab * sizeof *tok_len);
    if (!tok_ptr || !tok_len) goto oom;
    for (int32_t id = 0; id < st.vocab - 1; id++) {
        tok_ptr[id] = t.tbytes + t.toff[id];
        tok_len[id] = t.toff[id + 1] - t.toff[id];
    }
    tok_ptr[st.vocab - 1] = NULL, tok_len[st.vocab - 1] = 0;
    rc = bpe_write(out_dir, st.vocab, tok_ptr, tok_len, merges, mleft, mright, st.vocab - 1, e);
    st.total_s = now_s() - t0;
    if (stats && rc == HDLM_OK) *stats = st;
    goto done;
oom:
    rc = error_set(e, HDLM_ENOMEM, "tokenizer train: out of memory");
done:
    trainer_free(&t);
    free(touched);
    free(mleft);
    free(mright);
    free(tok_ptr);
    free(tok_len);
    return rc;
}
