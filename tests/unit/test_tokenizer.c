/* Tokenizers: bytes round-trips any UTF-8 exactly; text8 ids for a sentence with punctuation,
 * digits, capitals, newlines and non-ASCII letters; decoding, including out-of-vocabulary ids and
 * truncation to the output capacity. */
#include "check.h"
#include "data/tokenizer.h"

#include <stdint.h>
#include <string.h>

static void test_init(void) {
    tokenizer t;
    error e = {0};
    CHECK_EQ(tokenizer_init(&t, "bytes", &e), HDLM_OK);
    CHECK_EQ(t.kind, TOKENIZER_BYTES);
    CHECK_EQ(t.vocab, 256);
    CHECK_EQ(tokenizer_init(&t, "text8", &e), HDLM_OK);
    CHECK_EQ(t.kind, TOKENIZER_TEXT8);
    CHECK_EQ(t.vocab, 27);
    CHECK_EQ(tokenizer_init(&t, "bpe", &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "tokenizer: unknown tokenizer 'bpe', expected bytes, text8, gpt2 or bpe:DIR");
    CHECK_EQ(tokenizer_init(&t, NULL, &e), HDLM_EINVAL);
    CHECK_EQ(tokenizer_init_kind(&t, 2, &e), HDLM_OK);
    CHECK_EQ(t.vocab, 27);
    CHECK_EQ(tokenizer_init_kind(&t, 5, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "unknown tokenizer kind 5");
    CHECK_STR(tokenizer_name(TOKENIZER_BYTES), "bytes");
    CHECK_STR(tokenizer_name(TOKENIZER_TEXT8), "text8");
    CHECK_STR(tokenizer_name(0), "unknown");
}

static void test_bytes_roundtrip(void) {
    tokenizer t;
    tokenizer_init(&t, "bytes", NULL);
    /* 2-, 3- and 4-byte UTF-8 characters */
    const char *text = "caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89\n";
    size_t n = strlen(text);
    CHECK_EQ(n, 22);
    int32_t ids[64];
    CHECK_EQ(tokenizer_encode(&t, text, n, ids), 22);
    CHECK_EQ(ids[0], 'c');
    CHECK_EQ(ids[3], 0xc3);
    CHECK_EQ(ids[4], 0xa9);
    CHECK_EQ(ids[17], 0xf0);
    CHECK_EQ(ids[21], '\n');
    char out[64];
    CHECK_EQ(tokenizer_decode(&t, ids, 22, out, sizeof out), 22);
    CHECK_STR(out, text);

    /* every byte value maps to itself and back */
    char all[256];
    int32_t all_ids[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)(unsigned char)i;
    CHECK_EQ(tokenizer_encode(&t, all, 256, all_ids), 256);
    int same = 1;
    for (int i = 0; i < 256; i++)
        same &= all_ids[i] == i;
    CHECK(same);
    char back[257];
    CHECK_EQ(tokenizer_decode(&t, all_ids, 256, back, sizeof back), 256);
    CHECK(memcmp(back, all, 256) == 0);
}

static void test_text8_encode(void) {
    tokenizer t;
    tokenizer_init(&t, "text8", NULL);
    const char *text = "\"Hello, World!\" 42 cats\nand caf\xc3\xa9 au lait.";
    /* "hello world cats and caf au lait " */
    static const int32_t want[] = {8, 5,  12, 12, 15, 0, 23, 15, 18, 12, 4, 0,  3, 1, 20, 19, 0,
                                   1, 14, 4,  0,  3,  1, 6,  0,  1,  21, 0, 12, 1, 9, 20, 0};
    int n_want = (int)(sizeof want / sizeof want[0]);
    int32_t ids[128];
    int64_t n = tokenizer_encode(&t, text, strlen(text), ids);
    CHECK_EQ(n, n_want);
    int same = n == n_want;
    for (int i = 0; same && i < n_want; i++)
        same = ids[i] == want[i];
    CHECK(same);

    /* a non-ASCII letter between letters is one separator, not one per byte */
    n = tokenizer_encode(&t, "NA\xc3\x8fVE", 6, ids);
    CHECK_EQ(n, 5);
    CHECK_EQ(ids[0], 14);
    CHECK_EQ(ids[1], 1);
    CHECK_EQ(ids[2], 0);
    CHECK_EQ(ids[3], 22);
    CHECK_EQ(ids[4], 5);

    /* leading separators dropped, runs squeezed, nothing for a letterless text */
    n = tokenizer_encode(&t, "\n\n  ...z  \t 9 y", 15, ids);
    CHECK_EQ(n, 3);
    CHECK_EQ(ids[0], 26);
    CHECK_EQ(ids[1], 0);
    CHECK_EQ(ids[2], 25);
    CHECK_EQ(tokenizer_encode(&t, "!!! 123\n", 8, ids), 0);
    CHECK_EQ(tokenizer_encode(&t, "", 0, ids), 0);
}

static void test_decode(void) {
    tokenizer t8, tb;
    tokenizer_init(&t8, "text8", NULL);
    tokenizer_init(&tb, "bytes", NULL);
    char out[64];
    const int32_t ids[] = {8, 5, 12, 12, 15, 0, 27, -1, 26};
    CHECK_EQ(tokenizer_decode(&t8, ids, 9, out, sizeof out), 9);
    CHECK_STR(out, "hello __z");
    /* truncation keeps cap - 1 bytes and the terminator */
    CHECK_EQ(tokenizer_decode(&t8, ids, 9, out, 4), 3);
    CHECK_STR(out, "hel");
    CHECK_EQ(tokenizer_decode(&t8, ids, 9, out, 0), 0);

    const int32_t bids[] = {'a', 256, 'b', -3};
    CHECK_EQ(tokenizer_decode(&tb, bids, 4, out, sizeof out), 8);
    CHECK_STR(out, "a\xe2\x96\x88"
                   "b\xe2\x96\x88");
    /* the block is written whole or not at all */
    CHECK_EQ(tokenizer_decode(&tb, bids, 4, out, 4), 1);
    CHECK_STR(out, "a");
    CHECK_EQ(tokenizer_decode(&tb, bids, 4, out, 5), 4);
    CHECK_STR(out, "a\xe2\x96\x88");
}

int main(void) {
    test_init();
    test_bytes_roundtrip();
    test_text8_encode();
    test_decode();
    return check_report("test_tokenizer");
}
