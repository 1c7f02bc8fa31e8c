/* Word share (data/words.h): words of a text window and a hash set of a corpus' words. */
#include "data/words.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    uint64_t hash;
    int64_t off; /* into the arena; -1 = empty */
    uint32_t len;
} slot;

struct word_set {
    slot *slots;
    size_t cap, count; /* cap: a power of two */
    char *arena;
    size_t arena_len, arena_cap;
};

static int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}
static int is_word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}
static unsigned char lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static uint64_t hash_word(const char *w, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the lower-cased bytes */
    for (size_t i = 0; i < n; i++)
        h = (h ^ lower((unsigned char)w[i])) * 1099511628211ull;
    return h;
}

static int same_word(const char *stored, const char *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (stored[i] != (char)lower((unsigned char)w[i])) return 0;
    return 1;
}

/* The slot of word w (lower-cased compare): its own, or the empty slot where it would go. */
static slot *find(const word_set *ws, const char *w, size_t n, uint64_t h) {
    size_t mask = ws->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        slot *s = &ws->slots[i];
        if (s->off < 0) return s;
        if (s->hash == h && s->len == n && same_word(ws->arena + s->off, w, n)) return s;
    }
}

word_set *word_set_new(void) {
    word_set *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->cap = 1024;
    ws->slots = malloc(ws->cap * sizeof *ws->slots);
    if (!ws->slots) {
        free(ws);
        return NULL;
    }
    for (size_t i = 0; i < ws->cap; i++)
        ws->slots[i].off = -1;
    return ws;
}

void word_set_free(word_set *ws) {
    if (!ws) return;
    free(ws->slots);
    free(ws->arena);
    free(ws);
}

int64_t word_set_size(const word_set *ws) {
    return (int64_t)ws->count;
}

int word_set_has(const word_set *ws, const char *w, size_t n) {
    return find(ws, w, n, hash_word(w, n))->off >= 0;
}

static int grow(word_set *ws) {
    size_t cap = ws->cap * 2;
    slot *s = malloc(cap * sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < cap; i++)
        s[i].off = -1;
    for (size_t i = 0; i < ws->cap; i++) {
        if (ws->slots[i].off < 0) continue;
        size_t j = (size_t)ws->slots[i].hash & (cap - 1);
        while (s[j].off >= 0)
            j = (j + 1) & (cap - 1);
        s[j] = ws->slots[i];
    }
    free(ws->slots);
    ws->slots = s;
    ws->cap = cap;
    return 0;
}

static int insert(word_set *ws, const char *w, size_t n) {
    uint64_t h = hash_word(w, n);
    slot *s = find(ws, w, n, h);
    if (s->off >= 0) return 0;
    if (ws->arena_len + n > ws->arena_cap) {
        size_t cap = ws->arena_cap ? ws->arena_cap * 2 : 65536;
        while (cap < ws->arena_len + n)
            cap *= 2;
        char *a = realloc(ws->arena, cap);
        if (!a) return -1;
        ws->arena = a;
        ws->arena_cap = cap;
    }
    for (size_t i = 0; i < n; i++)
        ws->arena[ws->arena_len + i] = (char)lower((unsigned char)w[i]);
    s->hash = h;
    s->off = (int64_t)ws->arena_len;
    s->len = (uint32_t)n;
    ws->arena_len += n;
    ws->count++;
    if (ws->count * 2 > ws->cap) return grow(ws);
    return 0;
}

/* Calls fn on each counted word of a window (see words.h); stops and returns fn's non-zero. */
static int each_word(const char *text, size_t n, int (*fn)(void *, const char *, size_t),
                     void *ud) {
    size_t i = 0;
    while (i < n) {
        if (is_space((unsigned char)text[i])) {
            i++;
            continue;
        }
        size_t s = i;
        while (i < n && !is_space((unsigned char)text[i]))
            i++;
        size_t e = i;
        if (s == 0 || e == n) continue; /* touches the window's edge: maybe a cut word */
        while (s < e && !is_word_byte((unsigned char)text[s]))
            s++;
        while (e > s && !is_word_byte((unsigned char)text[e - 1]))
            e--;
        if (e > s) {
            int rc = fn(ud, text + s, e - s);
            if (rc) return rc;
        }
    }
    return 0;
}

static int add_fn(void *ud, const char *w, size_t n) {
    return insert(ud, w, n);
}

int word_set_add_text(word_set *ws, const char *text, size_t n) {
    return each_word(text, n, add_fn, ws);
}

typedef struct counter {
    const word_set *ws;
    int64_t words, known;
} counter;

static int count_fn(void *ud, const char *w, size_t n) {
    counter *c = ud;
    c->words++;
    c->known += word_set_has(c->ws, w, n);
    return 0;
}

void words_count(const word_set *ws, const char *text, size_t n, int64_t *words, int64_t *known) {
    counter c = {ws, 0, 0};
    each_word(text, n, count_fn, &c);
    *words = c.words;
    *known = c.known;
}

/* Decodes ids into a malloc'd buffer, the end-of-text id as a blank line. NULL when out of
 * memory. */
static char *decode_window(const tokenizer *t, const int32_t *ids, int64_t n, size_t *len) {
    size_t per = tokenizer_decode_cap(t, 1);
    size_t cap = (size_t)n * (per > 2 ? per : 2) + 1;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t w = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] == t->eot && t->eot >= 0) {
            buf[w++] = '\n';
            buf[w++] = '\n';
        } else {
            w += tokenizer_decode(t, ids + i, 1, buf + w, cap - w);
        }
    }
    *len = w;
    return buf;
}

int word_set_add_tokens(word_set *ws, const tokenizer *t, const int32_t *ids, int64_t n,
                        int64_t window) {
    if (window < 1) window = n;
    for (int64_t s = 0; s < n; s += window) {
        int64_t m = n - s < window ? n - s : window;
        size_t len;
        char *text = decode_window(t, ids + s, m, &len);
        if (!text) return -1;
        int rc = word_set_add_text(ws, text, len);
        free(text);
        if (rc) return -1;
    }
    return 0;
}

int words_count_tokens(const word_set *ws, const tokenizer *t, const int32_t *ids, int64_t n,
                       int64_t *words, int64_t *known) {
    size_t len;
    char *text = decode_window(t, ids, n, &len);
    if (!text) return -1;
    words_count(ws, text, len, words, known);
    free(text);
    return 0;
}
