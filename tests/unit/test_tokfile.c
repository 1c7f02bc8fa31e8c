/* Token files: prepare -> load gives back the encoded stream split into train and valid by the
 * documented chunk rule (re-derived here from tokfile_chunk_hash), files are byte-identical for
 * the same inputs, the split seed changes the split, and every malformed input (text or token
 * file) is refused with a one-line message naming the file and the offending value. */
#include "check.h"
#include "data/bpe_train.h"
#include "data/tokfile.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *path_in(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    HDLM_ASSERT(f);
    HDLM_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
}

/* Whole file into a malloc'd buffer (caller frees). */
static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    HDLM_ASSERT(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    HDLM_ASSERT(p && fread(p, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* Independent FNV-1a 64 so the checksum definition in the header is what is tested. */
static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t le(const unsigned char *p, int nbytes) {
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int nbytes) {
    for (int i = 0; i < nbytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Deterministic English-ish text with capitals, punctuation, digits, newlines and UTF-8. */
static char *gen_text(size_t n_bytes, uint64_t seed, size_t *len) {
    static const char *words[] = {"the",
                                  "Jury",
                                  "said",
                                  "caf\xc3\xa9",
                                  "of",
                                  "1961,",
                                  "and",
                                  "\xe2\x80\x94",
                                  "election.",
                                  "Atlanta's",
                                  "na\xc3\xafve",
                                  "irregularities",
                                  "\"quoted\"",
                                  "x",
                                  "it"};
    char *s = malloc(n_bytes + 32);
    size_t w = 0;
    uint64_t x = seed;
    while (w < n_bytes) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const char *word = words[(x >> 33) % 15];
        size_t wl = strlen(word);
        memcpy(s + w, word, wl);
        w += wl;
        s[w++] = (x >> 20) % 11 == 0 ? '\n' : ' ';
    }
    s[w] = '\0';
    *len = w;
    return s;
}

/* The documented rule, written out again: per-chunk membership for n tokens. */
static int64_t rule_chunks(int64_t n, double f, uint64_t seed, unsigned char *is_valid) {
    int64_t nc = (n + TOKFILE_CHUNK - 1) / TOKFILE_CHUNK, picked = 0, kmin = 0, kmax = 0;
    for (int64_t k = 0; k < nc; k++) {
        uint64_t h = tokfile_chunk_hash((uint64_t)k, seed);
        is_valid[k] = nc >= 2 && (double)h / 18446744073709551616.0 < f;
        picked += is_valid[k];
        if (h < tokfile_chunk_hash((uint64_t)kmin, seed)) kmin = k;
        if (h > tokfile_chunk_hash((uint64_t)kmax, seed)) kmax = k;
    }
    if (nc >= 2 && f > 0 && picked == 0) is_valid[kmin] = 1;
    if (nc >= 2 && picked == nc) is_valid[kmax] = 0;
    return nc;
}

/* Encodes text, prepares + loads it, and checks that walking the chunks in order and taking each
 * from train or valid as the rule says rebuilds the encoded stream exactly, using every token. */
static void check_partition(const char *text, size_t len, const char *tok_name, double f,
                            uint64_t seed, const char *out_name) {
    const char *txt = path_in("corpus.txt");
    write_file(txt, text, len);
    tokenizer tok;
    tokenizer_init(&tok, tok_name, NULL);
    int32_t *ids = malloc(len * sizeof *ids);
    int64_t n = tokenizer_encode(&tok, text, len, ids);

    tokfile_stats st;
    error e = {0};
    CHECK_EQ(tokfile_prepare(txt, path_in(out_name), tok_name, f, seed, &st, &e), HDLM_OK);
    CHECK_EQ(st.n_bytes, (int64_t)len);
    CHECK_EQ(st.n_train + st.n_valid, n);
    corpus c;
    CHECK_EQ(corpus_load(path_in(out_name), &c, &e), HDLM_OK);
    CHECK_EQ(c.tok.kind, tok.kind);
    CHECK_EQ(c.n_train, st.n_train);
    CHECK_EQ(c.n_valid, st.n_valid);

    unsigned char *is_valid = malloc((size_t)(n / TOKFILE_CHUNK + 2));
    int64_t nc = rule_chunks(n, f, seed, is_valid);
    int64_t it = 0, iv = 0, mismatches = 0;
    if (nc == 1) {
        int64_t want_valid = f > 0 ? (int64_t)ceil(f * (double)n) : 0;
        CHECK_EQ(c.n_valid, want_valid);
        for (int64_t i = 0; i < n; i++) {
            int32_t got = i < n - want_valid ? (it < c.n_train ? c.train[it++] : -1)
                                             : (iv < c.n_valid ? c.valid[iv++] : -1);
            mismatches += got != ids[i];
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            int32_t got = is_valid[i / TOKFILE_CHUNK] ? (iv < c.n_valid ? c.valid[iv++] : -1)
                                                      : (it < c.n_train ? c.train[it++] : -1);
            mismatches += got != ids[i];
        }
    }
    CHECK_EQ(mismatches, 0);
    CHECK_EQ(it, c.n_train);
    CHECK_EQ(iv, c.n_valid);
    if (f > 0) CHECK(c.n_valid > 0);
    CHECK(c.n_train > 0);

    /* the library's own membership agrees with the re-derived rule */
    unsigned char *lib = malloc((size_t)nc);
    CHECK_EQ(tokfile_split_chunks(n, f, seed, lib), nc);
    if (nc >= 2) CHECK(memcmp(lib, is_valid, (size_t)nc) == 0);
    free(lib);
    free(is_valid);
    corpus_free(&c);
    free(ids);
}

static void test_small_corpus(void) {
    size_t len;
    char *text = gen_text(1000, 1, &len);
    CHECK(len >= 1000 && len < 1040);
    check_partition(text, len, "bytes", 0.1, 5, "small.tok");
    /* one chunk: the tail is validation, ceil(0.05 * 1000) = 50 tokens */
    write_file(path_in("c1000.txt"), text, 1000);
    tokfile_stats st;
    error e = {0};
    CHECK_EQ(tokfile_prepare(path_in("c1000.txt"), path_in("c1000.tok"), "bytes", 0.05, 1, &st, &e),
             HDLM_OK);
    CHECK_EQ(st.n_valid, 50);
    CHECK_EQ(st.n_train, 950);
    /* fraction 0: everything is train */
    CHECK_EQ(tokfile_prepare(path_in("c1000.txt"), path_in("c0.tok"), "bytes", 0, 1, &st, &e),
             HDLM_OK);
    CHECK_EQ(st.n_valid, 0);
    CHECK_EQ(st.n_train, 1000);
    check_partition(text, len, "text8", 0.3, 5, "small8.tok");
    free(text);
}

static void test_header_layout(void) {
    const char *text = "Hello, tokens!\n";
    write_file(path_in("h.txt"), text, strlen(text));
    error e = {0};
    CHECK_EQ(tokfile_prepare(path_in("h.txt"), path_in("h.tok"), "text8", 0.25,
                             0x1122334455667788ull, NULL, &e),
             HDLM_OK);
    size_t n;
    unsigned char *p = read_file(path_in("h.tok"), &n);
    /* "hello tokens " = 13 tokens; valid = ceil(0.25 * 13) = 4 */
    CHECK_EQ(n, 64 + 13);
    CHECK(memcmp(p, "HDLMTOK1", 8) == 0);
    CHECK_EQ(le(p + 8, 4), 1);
    CHECK_EQ(le(p + 12, 4), TOKENIZER_TEXT8);
    CHECK_EQ(le(p + 16, 4), 27);
    CHECK_EQ(le(p + 20, 4), 1);
    CHECK_EQ(le(p + 24, 8), 9);
    CHECK_EQ(le(p + 32, 8), 4);
    CHECK(le(p + 40, 8) == fnv(p + 64, 13));
    CHECK(le(p + 48, 8) == 0x1122334455667788ull);
    int zeros = 1;
    for (int i = 56; i < 64; i++)
        zeros &= p[i] == 0;
    CHECK(zeros);
    static const unsigned char want[13] = {8, 5, 12, 12, 15, 0, 20, 15, 11, 5, 14, 19, 0};
    CHECK(memcmp(p + 64, want, 13) == 0);
    free(p);
    /* no temp file left behind */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path_in("h.tok"), (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
}

static void test_large_split(void) {
    size_t len;
    char *text = gen_text(200000, 2, &len);
    check_partition(text, len, "bytes", 0.1, 7, "big_a.tok");
    check_partition(text, len, "text8", 0.1, 7, "big8.tok");

    /* determinism: same inputs -> byte-identical file */
    error e = {0};
    CHECK_EQ(
        tokfile_prepare(path_in("corpus.txt"), path_in("big_b.tok"), "bytes", 0.1, 7, NULL, &e),
        HDLM_OK);
    /* corpus.txt now holds the same text as for big_a.tok (check_partition rewrote it) */
    size_t na, nb, nc;
    unsigned char *a = read_file(path_in("big_a.tok"), &na);
    unsigned char *b = read_file(path_in("big_b.tok"), &nb);
    CHECK_EQ(na, nb);
    CHECK(na == nb && memcmp(a, b, na) == 0);

    /* another split seed -> another split of the same stream */
    check_partition(text, len, "bytes", 0.1, 8, "big_c.tok");
    unsigned char *c = read_file(path_in("big_c.tok"), &nc);
    CHECK_EQ(nc, na);
    CHECK(memcmp(a, c, na) != 0);
    int64_t n = (int64_t)len, chunks = (n + TOKFILE_CHUNK - 1) / TOKFILE_CHUNK;
    CHECK_EQ(chunks, 49);
    unsigned char s7[64], s8[64];
    tokfile_split_chunks(n, 0.1, 7, s7);
    tokfile_split_chunks(n, 0.1, 8, s8);
    CHECK(memcmp(s7, s8, (size_t)chunks) != 0);
    free(a);
    free(b);
    free(c);
    free(text);
}

static void test_split_guarantees(void) {
    /* a tiny fraction over 10 chunks: the smallest-hash chunk is forced into validation */
    int64_t n = 10 * TOKFILE_CHUNK - 7;
    unsigned char v[10];
    CHECK_EQ(tokfile_split_chunks(n, 1e-9, 3, v), 10);
    int count = 0, kmin = 0;
    for (int k = 0; k < 10; k++) {
        count += v[k];
        if (tokfile_chunk_hash((uint64_t)k, 3) < tokfile_chunk_hash((uint64_t)kmin, 3)) kmin = k;
    }
    CHECK_EQ(count, 1);
    CHECK_EQ(v[kmin], 1);
    CHECK_EQ(tokfile_split_chunks(n, 0, 3, v), 10);
    count = 0;
    for (int k = 0; k < 10; k++)
        count += v[k];
    CHECK_EQ(count, 0);

    /* two chunks both below 0.5: the larger hash stays train. Find such a seed. */
    uint64_t seed = 0;
    while (
        !(tokfile_chunk_hash(0, seed) < (1ull << 63) && tokfile_chunk_hash(1, seed) < (1ull << 63)))
        seed++;
    unsigned char two[2];
    CHECK_EQ(tokfile_split_chunks(2 * TOKFILE_CHUNK, 0.5, seed, two), 2);
    int kmax = tokfile_chunk_hash(1, seed) > tokfile_chunk_hash(0, seed);
    CHECK_EQ(two[kmax], 0);
    CHECK_EQ(two[1 - kmax], 1);

    /* through prepare: a 2-chunk corpus with that seed keeps a non-empty train split */
    char *text = malloc(2 * TOKFILE_CHUNK);
    for (int i = 0; i < 2 * TOKFILE_CHUNK; i++)
        text[i] = (char)('a' + i % 26);
    write_file(path_in("two.txt"), text, 2 * TOKFILE_CHUNK);
    tokfile_stats st;
    error e = {0};
    CHECK_EQ(tokfile_prepare(path_in("two.txt"), path_in("two.tok"), "bytes", 0.5, seed, &st, &e),
             HDLM_OK);
    CHECK_EQ(st.n_train, TOKFILE_CHUNK);
    CHECK_EQ(st.n_valid, TOKFILE_CHUNK);
    free(text);
}

/* prepare on raw bytes; returns the status and leaves the message in e */
static int prepare_bytes(const void *data, size_t n, error *e) {
    write_file(path_in("corpus.txt"), data, n);
    return tokfile_prepare(path_in("corpus.txt"), path_in("bad.tok"), "bytes", 0.1, 1, NULL, e);
}

static void expect_msg(const error *e, const char *name, const char *rest) {
    char want[600];
    snprintf(want, sizeof want, "%s/%s: %s", dir, name, rest);
    CHECK_STR(e->msg, want);
}

static void test_prepare_refusals(void) {
    error e = {0};
    CHECK_EQ(
        tokfile_prepare(path_in("missing/corpus.txt"), path_in("x.tok"), "bytes", 0.1, 1, NULL, &e),
        HDLM_EIO);
    expect_msg(&e, "missing/corpus.txt", "cannot open: No such file or directory");

    CHECK_EQ(prepare_bytes("", 0, &e), HDLM_EINVAL);
    expect_msg(&e, "corpus.txt", "empty file, expected UTF-8 text");

    char buf[2000];
    memset(buf, 'a', sizeof buf);
    buf[1234] = '\0';
    CHECK_EQ(prepare_bytes(buf, sizeof buf, &e), HDLM_EINVAL);
    expect_msg(&e, "corpus.txt", "NUL byte at offset 1234, expected UTF-8 text");

    /* invalid UTF-8: the offset and lead byte of the first bad sequence, after valid multibyte */
    memset(buf, 'b', 100);
    memcpy(buf + 10, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\x89", 9);
    buf[57] = (char)0xff;
    CHECK_EQ(prepare_bytes(buf, 100, &e), HDLM_EINVAL);
    expect_msg(&e, "corpus.txt", "invalid UTF-8 at byte offset 57 (byte 0xff)");
    static const struct {
        const char *bytes;
        int len;
        const char *msg;
    } bad[] = {
        {"ab\xc0\xaf", 4, "invalid UTF-8 at byte offset 2 (byte 0xc0)"},        /* overlong '/' */
        {"ab\xe0\x80\xaf", 5, "invalid UTF-8 at byte offset 2 (byte 0xe0)"},    /* overlong 3 */
        {"a\xf0\x8f\xbf\xbf", 5, "invalid UTF-8 at byte offset 1 (byte 0xf0)"}, /* overlong 4 */
        {"abc\xed\xa0\x80", 6, "invalid UTF-8 at byte offset 3 (byte 0xed)"},   /* surrogate */
        {"\xf4\x90\x80\x80", 4, "invalid UTF-8 at byte offset 0 (byte 0xf4)"},  /* > U+10FFFF */
        {"\xf5\x80\x80\x80", 4, "invalid UTF-8 at byte offset 0 (byte 0xf5)"},  /* > U+10FFFF */
        {"caf\xe9", 4, "invalid UTF-8 at byte offset 3 (byte 0xe9)"},           /* Latin-1 */
        {"x\xe2\x82", 3, "invalid UTF-8 at byte offset 1 (byte 0xe2)"},         /* cut short */
        {"x\xc3(y", 4, "invalid UTF-8 at byte offset 1 (byte 0xc3)"},           /* bad cont. */
        {"x\x80", 2, "invalid UTF-8 at byte offset 1 (byte 0x80)"},             /* stray */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(prepare_bytes(bad[i].bytes, (size_t)bad[i].len, &e), HDLM_EINVAL);
        expect_msg(&e, "corpus.txt", bad[i].msg);
    }
    /* the largest valid code point and the ones around the surrogates are accepted */
    CHECK_EQ(prepare_bytes("\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80", 10, &e), HDLM_OK);

    write_file(path_in("corpus.txt"), "fine text", 9);
    CHECK_EQ(tokfile_prepare(path_in("corpus.txt"), path_in("x.tok"), "bytes", 0.6, 1, NULL, &e),
             HDLM_EINVAL);
    expect_msg(&e, "corpus.txt", "valid fraction 0.6 is outside [0, 0.5]");
    CHECK_EQ(tokfile_prepare(path_in("corpus.txt"), path_in("x.tok"), "bytes", -0.1, 1, NULL, &e),
             HDLM_EINVAL);
    expect_msg(&e, "corpus.txt", "valid fraction -0.1 is outside [0, 0.5]");
    CHECK_EQ(tokfile_prepare(path_in("corpus.txt"), path_in("x.tok"), "bytes", NAN, 1, NULL, &e),
             HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "valid fraction nan is outside [0, 0.5]");
    CHECK_EQ(
        tokfile_prepare(path_in("corpus.txt"), path_in("x.tok"), "wordpiece", 0.1, 1, NULL, &e),
        HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "unknown tokenizer 'wordpiece'");
    write_file(path_in("digits.txt"), "123 456!\n", 9);
    CHECK_EQ(tokfile_prepare(path_in("digits.txt"), path_in("x.tok"), "text8", 0.1, 1, NULL, &e),
             HDLM_EINVAL);
    expect_msg(&e, "digits.txt", "the text8 tokenizer produced no tokens (no letters?)");
    CHECK(access(path_in("x.tok"), F_OK) != 0);
    CHECK_EQ(
        tokfile_prepare(path_in("corpus.txt"), path_in("nodir/x.tok"), "bytes", 0.1, 1, NULL, &e),
        HDLM_EIO);
    CHECK_CONTAINS(e.msg, "nodir/x.tok.tmp.");
    CHECK_CONTAINS(e.msg, "cannot create: No such file or directory");
}

/* Writes a token file with the given header fields; checksum 0 means "compute it". */
static void write_tok(const char *name, const char *magic, uint32_t version, uint32_t kind,
                      uint32_t vocab, uint32_t bpt, uint64_t n_train, uint64_t n_valid,
                      uint64_t checksum, const unsigned char *payload, size_t len) {
    unsigned char *p = calloc(1, 64 + len);
    memcpy(p, magic, 8);
    put_le(p + 8, version, 4);
    put_le(p + 12, kind, 4);
    put_le(p + 16, vocab, 4);
    put_le(p + 20, bpt, 4);
    put_le(p + 24, n_train, 8);
    put_le(p + 32, n_valid, 8);
    put_le(p + 40, checksum ? checksum : fnv(payload, len), 8);
    put_le(p + 48, 99, 8);
    if (len) memcpy(p + 64, payload, len);
    write_file(path_in(name), p, 64 + len);
    free(p);
}

static int load(const char *name, error *e) {
    corpus c;
    int rc = corpus_load(path_in(name), &c, e);
    CHECK(c.train == NULL && c.valid == NULL); /* nothing left allocated on failure */
    corpus_free(&c);
    return rc;
}

static void test_load(void) {
    error e = {0};
    corpus c;
    /* 2 bytes per token, little-endian, across train and valid */
    unsigned char pay[2000];
    for (int i = 0; i < 1000; i++)
        put_le(pay + 2 * i, (uint64_t)((i * 7) % 256), 2);
    write_tok("two.tok", "HDLMTOK1", 1, 1, 256, 2, 600, 400, 0, pay, 2000);
    CHECK_EQ(corpus_load(path_in("two.tok"), &c, &e), HDLM_OK);
    CHECK_EQ(c.n_train, 600);
    CHECK_EQ(c.n_valid, 400);
    CHECK_EQ(c.tok.vocab, 256);
    CHECK_EQ(c.train[599], (599 * 7) % 256);
    CHECK_EQ(c.valid[0], (600 * 7) % 256);
    CHECK_EQ(c.valid[399], (999 * 7) % 256);
    CHECK(c.checksum == fnv(pay, 2000));
    corpus_free(&c);
    corpus_free(&c); /* idempotent on a zeroed corpus */
    corpus_free(NULL);

    CHECK_EQ(load("nothere.tok", &e), HDLM_EIO);
    expect_msg(&e, "nothere.tok", "cannot open: No such file or directory");

    write_file(path_in("x.tok"), "HDLMTOK1\x01\0", 10);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "x.tok", "truncated: 10 bytes, a token file header is 64");

    write_tok("x.tok", "abcdefgh", 1, 1, 256, 1, 2, 0, 0, pay, 2);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "x.tok", "not an hdlm token file (magic 'abcdefgh', expected 'HDLMTOK1')");
    write_tok("x.tok", "\x89PNG\r\n\x1a\n", 1, 1, 256, 1, 2, 0, 0, pay, 2);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(
        &e, "x.tok",
        "not an hdlm token file (magic '\\x89PNG\\x0d\\x0a\\x1a\\x0a', expected 'HDLMTOK1')");

    write_tok("x.tok", "HDLMTOK1", 9, 1, 256, 1, 2, 0, 0, pay, 2);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "x.tok", "format version 9, this hdlm reads 1 and 2");

    write_tok("x.tok", "HDLMTOK1", 1, 7, 256, 1, 2, 0, 0, pay, 2);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "x.tok", "unknown tokenizer kind 7, expected 1 (bytes) or 2 (text8)");

    write_tok("x.tok", "HDLMTOK1", 1, 1, 300, 2, 1, 0, 0, pay, 2);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "x.tok", "vocabulary 300 does not match tokenizer bytes (256)");

    write_tok("x.tok", "HDLMTOK1", 1, 2, 27, 3, 1, 0, 0, pay, 3);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "x.tok", "3 bytes per token, expected 1 or 2");

    write_tok("x.tok", "HDLMTOK1", 1, 1, 256, 2, 1000, 0, 0, pay, 1500);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "x.tok",
               "truncated: header says 1000 tokens (2000 bytes), file has 1500 bytes of tokens");
    write_tok("x.tok", "HDLMTOK1", 1, 1, 256, 1, 900, 100, 0, pay, 1001);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "x.tok",
               "trailing bytes: header says 1000 tokens (1000 bytes), file has 1001 bytes of "
               "tokens");
    /* absurd sizes are refused from the file length, without trying to allocate them */
    write_tok("x.tok", "HDLMTOK1", 1, 1, 256, 2, UINT64_MAX / 2, 5, 0, pay, 20);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "x.tok: truncated: header says 9223372036854775807 + 5 tokens");
    write_tok("x.tok", "HDLMTOK1", 1, 1, 256, 2, 1ull << 62, 0, 0, pay, 20);
    CHECK_EQ(load("x.tok", &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "x.tok: truncated: header says 4611686018427387904 tokens "
                          "(9223372036854775808 bytes), file has 20 bytes of tokens");

    /* checksum: a prepared file with one payload byte flipped */
    size_t n;
    unsigned char *p = read_file(path_in("h.tok"), &n);
    p[64 + 3] ^= 0x01;
    write_file(path_in("flip.tok"), p, n);
    CHECK_EQ(load("flip.tok", &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "flip.tok: checksum mismatch: file is corrupt");

    /* token out of range in a text8 file: edit a byte, then fix the checksum */
    p[64 + 3] = 30;
    put_le(p + 40, fnv(p + 64, n - 64), 8);
    write_file(path_in("oov.tok"), p, n);
    CHECK_EQ(load("oov.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "oov.tok", "token 30 at index 3 is outside the vocabulary (27)");
    free(p);
    /* and a 2-byte one, in the validation part */
    put_le(pay + 2 * 17, 300, 2);
    write_tok("oov2.tok", "HDLMTOK1", 1, 1, 256, 2, 10, 990, 0, pay, 2000);
    CHECK_EQ(load("oov2.tok", &e), HDLM_EINVAL);
    expect_msg(&e, "oov2.tok", "token 300 at index 17 is outside the vocabulary (256)");

    CHECK_EQ(load("", &e), HDLM_EIO); /* the directory itself */
    CHECK_CONTAINS(e.msg, "not a regular file");
}

/* The checked-in sample text: a bytes token file decodes back to the file exactly. */
static void test_sample_file(void) {
#ifdef HDLM_SOURCE_DIR
    const char *src = HDLM_SOURCE_DIR "/tests/data/tiny.txt";
#else
    const char *src = "tests/data/tiny.txt";
#endif
    size_t n;
    unsigned char *text = read_file(src, &n);
    CHECK_EQ(n, 1736);
    tokfile_stats st;
    error e = {0};
    CHECK_EQ(tokfile_prepare(src, path_in("tiny.tok"), "bytes", 0.1, 1, &st, &e), HDLM_OK);
    CHECK_EQ(st.n_valid, 174); /* one chunk: ceil(0.1 * 1736) */
    CHECK_EQ(st.n_train, 1562);
    corpus c;
    CHECK_EQ(corpus_load(path_in("tiny.tok"), &c, &e), HDLM_OK);
    char *back = malloc(n + 1);
    size_t w = tokenizer_decode(&c.tok, c.train, (size_t)c.n_train, back, n + 1);
    w += tokenizer_decode(&c.tok, c.valid, (size_t)c.n_valid, back + w, n + 1 - w);
    CHECK_EQ(w, n);
    CHECK(memcmp(back, text, n) == 0);
    free(back);
    free(text);
    corpus_free(&c);
}

/* Token files of a BPE tokenizer (version 2): the record after the header holds the vocabulary's
 * SHA-256 and the tokenizer's name; ids are 2 bytes; documents are separated by <|endoftext|>;
 * loading with another tokenizer, or after the vocabulary changed, is one error naming both. */
static void test_bpe_files(void) {
    const char *text = "The cat sat on the mat.\nThe dog sat too.\n\nA second document, which "
                       "is about the cat and the dog.\n  \n\nThird document.\n";
    size_t n = strlen(text);
    write_file(path_in("docs.txt"), text, n);
    error e = {0};
    bpe_train_stats bs;
    CHECK_EQ(bpe_train(text, n, 300, path_in("bpeA"), &bs, &e), HDLM_OK);
    CHECK_EQ(bpe_train(text, n, 280, path_in("bpeB"), &bs, &e), HDLM_OK);
    char specA[200], specB[200];
    snprintf(specA, sizeof specA, "bpe:%s", path_in("bpeA"));
    snprintf(specB, sizeof specB, "bpe:%s", path_in("bpeB"));
    tokenizer ta, tb;
    CHECK_EQ(tokenizer_init(&ta, specA, &e), HDLM_OK);
    CHECK_EQ(tokenizer_init(&tb, specB, &e), HDLM_OK);

    tokfile_stats st;
    tokfile_options o = {specA, 0.2, 3, TOKFILE_DOCS_DEFAULT};
    CHECK_EQ(tokfile_prepare_opts(path_in("docs.txt"), path_in("a.tok"), &o, &st, &e), HDLM_OK);
    CHECK_EQ(st.n_docs, 3);
    CHECK_EQ(st.docs, TOKENIZER_DOCS_BLANK);
    /* the stream: doc1 EOT doc2 EOT doc3, as tokenizer_encode_docs gives it */
    int32_t *ids = malloc(n * sizeof *ids);
    int64_t k = tokenizer_encode_docs(&ta, text, n, TOKENIZER_DOCS_BLANK, ids, NULL, &e);
    CHECK_EQ(st.n_train + st.n_valid, k);
    int eots = 0;
    for (int64_t i = 0; i < k; i++)
        eots += ids[i] == ta.eot;
    CHECK_EQ(eots, 2);

    /* the header: version 2, kind bpe, the record */
    size_t len;
    unsigned char *p = read_file(path_in("a.tok"), &len);
    const char *label = tokenizer_label(&ta);
    size_t ll = strlen(label);
    CHECK_EQ(le(p + 8, 4), 2);
    CHECK_EQ(le(p + 12, 4), TOKENIZER_BPE);
    CHECK_EQ(le(p + 16, 4), 300);
    CHECK_EQ(le(p + 20, 4), 2);
    CHECK_EQ(le(p + 56, 4), ll);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", p[64 + i]);
    CHECK_STR(hex, tokenizer_sha256(&ta));
    CHECK(!memcmp(p + 96, label, ll));
    CHECK_EQ(len, 64 + 32 + ll + 2 * (size_t)k);
    CHECK(le(p + 40, 8) == fnv(p + 96 + ll, 2 * (size_t)k));
    free(p);

    /* loads by itself (the named tokenizer), with the right one, not with another */
    corpus c;
    CHECK_EQ(corpus_load(path_in("a.tok"), &c, &e), HDLM_OK);
    CHECK_EQ(c.tok.kind, TOKENIZER_BPE);
    CHECK(c.tok.bpe == ta.bpe);
    CHECK_EQ(c.n_train + c.n_valid, k);
    corpus_free(&c);
    CHECK_EQ(corpus_load_expect(path_in("a.tok"), &ta, &c, &e), HDLM_OK);
    corpus_free(&c);
    CHECK_EQ(corpus_load_expect(path_in("a.tok"), &tb, &c, &e), HDLM_EINVAL);
    CHECK(c.train == NULL);
    char want[600];
    snprintf(want, sizeof want,
             "made with tokenizer %s (vocabulary SHA-256 %.16s...), expected %s "
             "(vocabulary SHA-256 %.16s...)",
             label, tokenizer_sha256(&ta), tokenizer_label(&tb), tokenizer_sha256(&tb));
    CHECK_CONTAINS(e.msg, want);
    CHECK_CONTAINS(e.msg, "a.tok: ");
    tokenizer tbytes;
    tokenizer_init(&tbytes, "bytes", NULL);
    CHECK_EQ(corpus_load_expect(path_in("a.tok"), &tbytes, &c, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "expected bytes (vocabulary SHA-256");
    /* a bytes file expected as the BPE: refused too */
    CHECK_EQ(tokfile_prepare(path_in("docs.txt"), path_in("b.tok"), "bytes", 0.1, 1, &st, &e),
             HDLM_OK);
    CHECK_EQ(st.n_docs, 1); /* no end-of-text token: no document breaks */
    CHECK_EQ(corpus_load_expect(path_in("b.tok"), &ta, &c, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "made with tokenizer bytes");
    /* document breaks asked of a tokenizer without an end-of-text token */
    tokfile_options ob = {"bytes", 0.1, 1, TOKENIZER_DOCS_BLANK};
    CHECK_EQ(tokfile_prepare_opts(path_in("docs.txt"), path_in("c.tok"), &ob, &st, &e),
             HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "docs.txt: tokenizer bytes has no end-of-text token");
    /* docs = none with a BPE: one document, no EOT */
    tokfile_options on = {specA, 0.1, 1, TOKENIZER_DOCS_NONE};
    CHECK_EQ(tokfile_prepare_opts(path_in("docs.txt"), path_in("n.tok"), &on, &st, &e), HDLM_OK);
    CHECK_EQ(st.n_docs, 1);
    int docs;
    CHECK_EQ(tokfile_docs_from_name("blank", &docs), HDLM_OK);
    CHECK_EQ(docs, TOKENIZER_DOCS_BLANK);
    CHECK_EQ(tokfile_docs_from_name("paragraph", &docs), HDLM_EINVAL);

    /* the record says which vocabulary: a file whose directory now holds another vocabulary is
     * refused when loaded by name (the registry caches per process, so corrupt the record's hash
     * instead of retraining) */
    p = read_file(path_in("a.tok"), &len);
    p[64] ^= 0xff;
    write_file(path_in("stale.tok"), p, len);
    CHECK_EQ(load("stale.tok", &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "whose vocabulary had SHA-256");
    CHECK_CONTAINS(e.msg, "now has");
    /* a record longer than the file, and a version-2 kind that is not a BPE */
    put_le(p + 56, 4000, 4);
    write_file(path_in("rec.tok"), p, 200);
    CHECK_EQ(load("rec.tok", &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "truncated or bad tokenizer record (name of 4000 bytes");
    p[64] ^= 0xff;
    put_le(p + 56, ll, 4);
    put_le(p + 12, TOKENIZER_BYTES, 4);
    write_file(path_in("kind.tok"), p, len);
    CHECK_EQ(load("kind.tok", &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "tokenizer kind 1 in a version 2 file, expected 3 (gpt2) or 4 (bpe)");
    /* a BPE that cannot be found any more */
    memcpy(p + 96 + ll - 4, "XXXX", 4);
    put_le(p + 12, TOKENIZER_BPE, 4);
    write_file(path_in("gone.tok"), p, len);
    CHECK_EQ(load("gone.tok", &e), HDLM_EIO);
    CHECK_CONTAINS(e.msg, "gone.tok: made with tokenizer bpe:");
    free(p);
    free(ids);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hdlm_tokfile_XXXXXX");
    HDLM_ASSERT(mkdtemp(dir));
    test_small_corpus();
    test_header_layout();
    test_large_split();
    test_split_guarantees();
    test_prepare_refusals();
    test_load();
    test_sample_file();
    test_bpe_files();
    int rc = check_report("test_tokfile");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
