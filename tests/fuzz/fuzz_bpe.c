/* Fuzz target: byte-level BPE (data/bpe.c, data/pretok.c) on arbitrary bytes. Input byte 0 picks
 * the mode. Even: the rest is text, encoded with a small trained-style vocabulary (written once):
 * every id must be in the vocabulary, there are never more ids than bytes, the ids decode back
 * to the exact input (invalid UTF-8 and NUL bytes included), and the cached and uncached
 * encodings agree. Odd: the rest is a vocab.bpe file loaded next to that vocabulary's
 * encoder.json: it must load or fail with a message, never crash, and a vocabulary that loads must
 * round-trip the text "abc ab\xff". */
#include "data/bpe.h"
#include "data/tokenizer.h"
#include "fuzz_util.h"

#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char vdir[128];
static bpe *vocab;

static char mdir[160]; /* where mode-odd inputs put their vocab.bpe */

static void remove_dir(const char *d) {
    char p[200];
    snprintf(p, sizeof p, "%s/encoder.json", d);
    unlink(p);
    snprintf(p, sizeof p, "%s/vocab.bpe", d);
    unlink(p);
    rmdir(d);
}

static void cleanup(void) {
    remove_dir(vdir);
    remove_dir(mdir);
    bpe_free(vocab);
}

/* bytes + merges a b, ab c, b c, c c, a a, ' ' a, ' ' ab; <|endoftext|> */
static void setup(void) {
    if (vocab) return;
    snprintf(vdir, sizeof vdir, "%s/hdlm_fuzz_bpe_%d", fuzz_tmp_root(), (int)getpid());
    snprintf(mdir, sizeof mdir, "%s/hdlm_fuzz_bpe_v_%d", fuzz_tmp_root(), (int)getpid());
    atexit(cleanup);
    static unsigned char bytes[256];
    const unsigned char *tok[265];
    size_t len[265];
    int32_t id[256];
    for (int k = 0; k < 256; k++) {
        bytes[k] = bpe_byte_at(k);
        tok[k] = &bytes[k], len[k] = 1;
        id[bytes[k]] = k;
    }
    const char *extra[] = {"ab", "abc", "bc", "cc", "aa", " a", " ab"};
    for (int i = 0; i < 7; i++)
        tok[256 + i] = (const unsigned char *)extra[i], len[256 + i] = strlen(extra[i]);
    tok[263] = NULL, len[263] = 0;
    int32_t left[7] = {id['a'], 256, id['b'], id['c'], id['a'], id[' '], id[' ']};
    int32_t right[7] = {id['b'], id['c'], id['c'], id['c'], id['a'], id['a'], 256};
    error e = {0};
    FUZZ_REQUIRE(bpe_write(vdir, 264, tok, len, 7, left, right, 263, &e) == HDLM_OK);
    FUZZ_REQUIRE(bpe_load(vdir, "fuzz", &vocab, &e) == HDLM_OK);
}

static void round_trip(const bpe *b, const char *s, size_t n) {
    error e = {0};
    bpe_encoder *x;
    FUZZ_REQUIRE(bpe_encoder_new(b, &x, &e) == HDLM_OK);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids), *again = malloc((n ? n : 1) * sizeof *ids);
    FUZZ_REQUIRE(ids && again);
    int64_t k = bpe_encode(x, s, n, ids, &e);
    int64_t k2 = bpe_encode(x, s, n, again, &e); /* the second time from the cache */
    FUZZ_REQUIRE(k >= 0 && k <= (int64_t)n && k2 == k);
    FUZZ_REQUIRE(!memcmp(ids, again, (size_t)k * sizeof *ids));
    size_t total = 0;
    for (int64_t i = 0; i < k; i++) {
        size_t tl;
        const unsigned char *t = bpe_token(b, ids[i], &tl);
        FUZZ_REQUIRE(t && ids[i] != bpe_eot(b) && total + tl <= n);
        FUZZ_REQUIRE(!memcmp(s + total, t, tl));
        total += tl;
    }
    FUZZ_REQUIRE(total == n);
    free(ids);
    free(again);
    bpe_encoder_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    setup();
    if (!(data[0] & 1)) {
        round_trip(vocab, (const char *)data + 1, size - 1);
        return 0;
    }
    /* a vocab.bpe of the fuzzer's making next to the fixed encoder.json */
    char path[200], enc_src[200];
    const char *dir = mdir;
    mkdir(dir, 0700);
    snprintf(enc_src, sizeof enc_src, "%s/encoder.json", vdir);
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    FILE *in = fopen(enc_src, "rb"), *out = fopen(path, "wb");
    FUZZ_REQUIRE(in && out);
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        FUZZ_REQUIRE(fwrite(buf, 1, got, out) == got);
    fclose(in);
    fclose(out);
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    out = fopen(path, "wb");
    FUZZ_REQUIRE(out);
    FUZZ_REQUIRE(fwrite(data + 1, 1, size - 1, out) == size - 1);
    fclose(out);
    bpe *b = NULL;
    error e = {0};
    int rc = bpe_load(dir, "fuzzed", &b, &e);
    if (rc == HDLM_OK) {
        round_trip(b, "abc ab\xff", 7);
        bpe_free(b);
    } else {
        FUZZ_REQUIRE(b == NULL && e.msg[0] && strstr(e.msg, dir));
    }
    return 0;
}
