/* BPE training: the merges of tiny corpora worked out by hand (counts, then the lexicographic
 * tie-break), the two files it writes, early stop when no pair is left, determinism (the same text
 * gives the same vocabulary hash), round trips, and that encoding with the trained vocabulary
 * equals the greedy merge-rank application on every piece of the training text and of other text.
 */
#include "check.h"
#include "data/bpe.h"
#include "data/bpe_train.h"
#include "data/pretok.h"
#include "data/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    HDLM_ASSERT(p && fread(p, 1, (size_t)len, f) == (size_t)len);
    p[len] = '\0';
    fclose(f);
    *n = (size_t)len;
    return p;
}

static const char *sub(const char *name) {
    static char buf[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static const char *train(const char *text, int vocab, const char *name, bpe_train_stats *st) {
    error e = {0};
    int rc = bpe_train(text, strlen(text), vocab, sub(name), st, &e);
    CHECK_EQ(rc, HDLM_OK);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    return sub(name);
}

static void test_by_hand(void) {
    /* pieces: "ab" x1, " ab" x2, " abc" x1. Pair counts: (a b) 4, (' ' a) 3, (b c) 1.
     * 1: a b (4)  -> words [ab] [' ' ab]x2 [' ' ab c]; pairs (' ' ab) 3, (ab c) 1
     * 2: ' ' ab (3) -> [ab] [' ab']x2 [' ab' c]; pairs (' ab' c) 1
     * 3: ' ab' c (1) -> no pair left: 3 merges, vocabulary 256 + 3 + 1 */
    bpe_train_stats st;
    const char *d = train("ab ab ab abc", 300, "hand", &st);
    CHECK_EQ(st.n_pieces, 4);
    CHECK_EQ(st.n_words, 3);
    CHECK_EQ(st.n_merges, 3);
    CHECK_EQ(st.vocab, 260);
    char path[200];
    size_t n;
    snprintf(path, sizeof path, "%s/vocab.bpe", d);
    char *merges = slurp(path, &n);
    CHECK_STR(merges, "#version: 0.2\na b\n\xc4\xa0 ab\n\xc4\xa0"
                      "ab c\n");
    free(merges);
    snprintf(path, sizeof path, "%s/encoder.json", d);
    char *enc = slurp(path, &n);
    CHECK(enc && !strncmp(enc, "{\"!\": 0, \"\\\"\": 1, \"#\": 2", 24));
    CHECK(enc && strstr(enc, "\"ab\": 256, \"\xc4\xa0"
                             "ab\": 257, \"\xc4\xa0"
                             "abc\": 258, \"<|endoftext|>\": 259}"));
    free(enc);

    /* ties: "xy yx" has (x y), (' ' y), (y x) once each: the lexicographically smallest pair
     * first (' ' < 'x' < 'y'); then (x y) and (' y' x) tie, and ' y' < x */
    d = train("xy yx", 260, "ties", &st);
    CHECK_EQ(st.n_merges, 3);
    snprintf(path, sizeof path, "%s/vocab.bpe", d);
    merges = slurp(path, &n);
    CHECK_STR(merges, "#version: 0.2\n\xc4\xa0 y\n\xc4\xa0y x\nx y\n");
    free(merges);
    /* overlapping occurrences: "bbb" counts (b b) twice, merges it leftmost to [bb b], then
     * (bb b) */
    d = train("bbb", 260, "overlap", &st);
    snprintf(path, sizeof path, "%s/vocab.bpe", d);
    merges = slurp(path, &n);
    CHECK_STR(merges, "#version: 0.2\nb b\nbb b\n");
    free(merges);
    CHECK_EQ(st.n_merges, 2);

    /* stops at the asked size; refuses sizes without room for bytes + <|endoftext|> */
    d = train("ab ab ab abc", 258, "small", &st);
    CHECK_EQ(st.n_merges, 1);
    CHECK_EQ(st.vocab, 258);
    error e = {0};
    CHECK_EQ(bpe_train("abc", 3, 256, sub("no"), &st, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "vocabulary 256 is outside 257..65536");
}

/* the greedy merge-rank application on one piece (the definition) */
static int naive(const bpe *b, const unsigned char *s, size_t n, int32_t *out) {
    int m = (int)n;
    for (int i = 0; i < m; i++)
        out[i] = bpe_byte_id(b, s[i]);
    for (int r = 0; r < bpe_n_merges(b); r++) {
        int32_t l, rt, res;
        bpe_merge(b, r, &l, &rt, &res);
        int w = 0;
        for (int i = 0; i < m; i++) {
            if (i + 1 < m && out[i] == l && out[i + 1] == rt)
                out[w++] = res, i++;
            else
                out[w++] = out[i];
        }
        m = w;
    }
    return m;
}

typedef struct cmp_ctx {
    const bpe *b;
    bpe_encoder *x;
    int64_t pieces, differ;
} cmp_ctx;

static int compare_piece(void *ud, const unsigned char *p, size_t n) {
    cmp_ctx *c = ud;
    int32_t a[4096], w[4096];
    if (n > 4096) return 0;
    error e = {0};
    int64_t k = bpe_encode(c->x, (const char *)p, n, a, &e); /* one piece: its own split */
    int kw = naive(c->b, p, n, w);
    c->pieces++;
    if (k != kw || memcmp(a, w, (size_t)kw * sizeof *a)) c->differ++;
    return 0;
}

static void test_trained_encoder(void) {
#ifdef HDLM_SOURCE_DIR
    const char *src = HDLM_SOURCE_DIR "/tests/data/tiny.txt";
#else
    const char *src = "tests/data/tiny.txt";
#endif
    size_t n;
    char *text = slurp(src, &n);
    CHECK(text != NULL);
    if (!text) return;
    bpe_train_stats st;
    error e = {0};
    CHECK_EQ(bpe_train(text, n, 400, sub("tiny"), &st, &e), HDLM_OK);
    CHECK_EQ(st.vocab, 400);
    CHECK_EQ(st.n_merges, 143);
    /* deterministic: the same text twice gives the same vocabulary */
    CHECK_EQ(bpe_train(text, n, 400, sub("tiny2"), &st, &e), HDLM_OK);
    char spec[200], spec2[200];
    snprintf(spec, sizeof spec, "bpe:%s", sub("tiny"));
    snprintf(spec2, sizeof spec2, "bpe:%s", sub("tiny2"));
    tokenizer t, t2;
    CHECK_EQ(tokenizer_init(&t, spec, &e), HDLM_OK);
    CHECK_EQ(tokenizer_init(&t2, spec2, &e), HDLM_OK);
    CHECK_STR(tokenizer_sha256(&t), tokenizer_sha256(&t2));
    CHECK_EQ(t.eot, 399);

    /* encoder = greedy merge-rank application, piece by piece, on the training text and on text
     * it never saw (with bytes it never saw) */
    bpe_encoder *x;
    CHECK_EQ(bpe_encoder_new(t.bpe, &x, &e), HDLM_OK);
    pretok *pt;
    CHECK_EQ(pretok_new(&pt, &e), HDLM_OK);
    cmp_ctx c = {t.bpe, x, 0, 0};
    CHECK_EQ(pretok_split(pt, text, n, compare_piece, &c, &e), HDLM_OK);
    const char *other = "Unseen words: zyzzyva quixotically, 1234567 \xf0\x9f\x8e\x89 \xff\xfe the "
                        "thethe   then";
    CHECK_EQ(pretok_split(pt, other, strlen(other), compare_piece, &c, &e), HDLM_OK);
    CHECK(c.pieces > 300);
    CHECK_EQ(c.differ, 0);
    pretok_free(pt);
    bpe_encoder_free(x);

    /* round trip of the training text, fewer tokens than bytes */
    int32_t *ids = malloc(n * sizeof *ids);
    char *back = malloc(tokenizer_decode_cap(&t, n));
    int64_t k = tokenizer_encode(&t, text, n, ids);
    CHECK(k > 0 && k < (int64_t)n / 2);
    CHECK_EQ(tokenizer_decode(&t, ids, (size_t)k, back, tokenizer_decode_cap(&t, n)), n);
    CHECK(!memcmp(back, text, n));
    free(ids);
    free(back);
    free(text);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hdlm_bpetrain_XXXXXX");
    HDLM_ASSERT(mkdtemp(dir));
    test_by_hand();
    test_trained_encoder();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_bpe_train: could not remove %s\n", dir);
    return check_report("test_bpe_train");
}
