/* Byte-level BPE and GPT-2 pre-tokenisation: GPT-2's byte <-> character mapping; the pieces of
 * contractions, spaces, newlines, digits and invalid UTF-8 (maximal subparts as one U+FFFD);
 * the merge loop on a hand-written vocabulary, merges worked out by hand and checked against a
 * naive greedy merge-rank application on random strings; the whole-piece shortcut; round trips of
 * arbitrary bytes; files written and read back with the same hash; malformed files refused with
 * the file and line named; document breaks; GPT-2 ids when its files are present. */
#include "check.h"
#include "data/bpe.h"
#include "data/pretok.h"
#include "data/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    HDLM_ASSERT(f);
    fputs(text, f);
    fclose(f);
}

/* ---- byte <-> character mapping ---- */

static void test_mapping(void) {
    CHECK_EQ(bpe_byte_to_char(' '), 0x120);  /* 'Ġ' */
    CHECK_EQ(bpe_byte_to_char('\n'), 0x10a); /* 'Ċ' */
    CHECK_EQ(bpe_byte_to_char(0), 0x100);
    CHECK_EQ(bpe_byte_to_char(0xad), 0x143); /* the last of the 68 */
    CHECK_EQ(bpe_byte_to_char('!'), '!');
    CHECK_EQ(bpe_byte_to_char(0xe9), 0xe9);
    int ok = 1;
    for (int b = 0; b < 256; b++)
        ok &= bpe_char_to_byte(bpe_byte_to_char((unsigned char)b)) == b;
    CHECK(ok);
    CHECK_EQ(bpe_char_to_byte(0x144), -1);
    CHECK_EQ(bpe_char_to_byte(' '), -1);
    CHECK_EQ(bpe_byte_at(0), '!');
    CHECK_EQ(bpe_byte_at(187), 0xff); /* 94 + 12 + 82 printable bytes first */
    CHECK_EQ(bpe_byte_at(188), 0x00);
    CHECK_EQ(bpe_byte_at(255), 0xad);
}

/* ---- pre-tokenisation ---- */

typedef struct pieces {
    char buf[1024];
    size_t w;
    int n;
} pieces;

static int collect(void *ud, const unsigned char *p, size_t n) {
    pieces *ps = ud;
    if (ps->n) ps->buf[ps->w++] = '|';
    memcpy(ps->buf + ps->w, p, n);
    ps->w += n;
    ps->buf[ps->w] = '\0';
    ps->n++;
    return 0;
}

static pieces last;

/* the pieces of s joined by '|' */
static const char *split(pretok *pt, const char *s, size_t n) {
    memset(&last, 0, sizeof last);
    error e = {0};
    CHECK_EQ(pretok_split(pt, s, n, collect, &last, &e), HDLM_OK);
    return last.buf;
}
#define SPLIT(s) split(pt, s, sizeof(s) - 1)

static void test_pretok(void) {
    pretok *pt;
    error e = {0};
    CHECK_EQ(pretok_new(&pt, &e), HDLM_OK);
    CHECK_STR(SPLIT("Hello world"), "Hello| world");
    CHECK_STR(SPLIT("I'm you're it's"), "I|'m| you|'re| it|'s");
    CHECK_STR(SPLIT("JOHN'S 'S"), "JOHN|'|S| '|S"); /* case-sensitive contractions */
    CHECK_STR(SPLIT("a  b   c"), "a| | b|  | c");
    CHECK_STR(SPLIT("end.\n\n"), "end|.|\n\n");
    CHECK_STR(SPLIT("x \n y"), "x| \n| y");
    CHECK_STR(SPLIT("abc123 4.5"), "abc|123| 4|.|5");
    CHECK_STR(SPLIT("\t\tz"), "\t|\t|z"); /* only a space joins the word after it */
    CHECK_STR(SPLIT("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac!!"),
              "caf\xc3\xa9| \xe6\x97\xa5\xe6\x9c\xac|!!");
    /* JavaScript's \s: U+FEFF is a space, U+0085 is not */
    CHECK_STR(SPLIT("a\xef\xbb\xbf"
                    "b"),
              "a|\xef\xbb\xbf|b");
    CHECK_STR(SPLIT("a\xc2\x85"
                    "b"),
              "a|\xc2\x85|b");
    /* invalid UTF-8: each maximal subpart is one symbol character, the bytes are kept */
    CHECK_STR(SPLIT("a\xff b"), "a|\xff| b");
    CHECK_STR(SPLIT("\xff\xfe!x"), "\xff\xfe!|x");
    CHECK_STR(SPLIT(" \xffx"), " \xff|x");
    CHECK_STR(SPLIT("w\xed\xa0\x80s"), "w|\xed\xa0\x80|s"); /* a UTF-8-encoded surrogate */
    CHECK_STR(SPLIT("x\xc3"), "x|\xc3");
    CHECK_STR(SPLIT("it'\xffs"), "it|'\xff|s");
    /* pieces cover the input exactly, NUL bytes included */
    static const char nul[] = "a\0b \0";
    split(pt, nul, 5);
    CHECK_EQ(last.n, 4); /* a | \0 | b | ' '\0 */
    CHECK_EQ(last.w, 5 + 3);
    CHECK(!memcmp(last.buf, "a|\0|b| \0", 8));
    pretok_free(pt);

    size_t sub;
    CHECK_EQ(pretok_utf8_char((const unsigned char *)"\xe2\x82\x41", 3, &sub), 0);
    CHECK_EQ(sub, 2);
    CHECK_EQ(pretok_utf8_char((const unsigned char *)"\xed\xa0\x80", 3, &sub), 0);
    CHECK_EQ(sub, 1);
    CHECK_EQ(pretok_utf8_char((const unsigned char *)"\xf0\x9f\x98", 3, &sub), 0);
    CHECK_EQ(sub, 3);
    CHECK_EQ(pretok_utf8_char((const unsigned char *)"\xc0\xaf", 2, &sub), 0);
    CHECK_EQ(sub, 1);
    CHECK_EQ(pretok_utf8_char((const unsigned char *)"\xf0\x9f\x98\x80", 4, &sub), 4);
}

/* ---- a hand-written vocabulary ---- */

/* bytes, then "ab" (a b), "abc" (ab c), "bc" (b c), "cc" (c c), "aa" (a a), plus "zz" that no
 * merge makes, then <|endoftext|> */
static int32_t id_of(unsigned char byte) {
    for (int k = 0; k < 256; k++)
        if (bpe_byte_at(k) == byte) return k;
    return -1;
}

static const char *make_vocab(const char *name) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    static unsigned char bytes[256];
    const unsigned char *tok[263];
    size_t len[263];
    for (int k = 0; k < 256; k++) {
        bytes[k] = bpe_byte_at(k);
        tok[k] = &bytes[k];
        len[k] = 1;
    }
    const char *extra[] = {"ab", "abc", "bc", "cc", "aa", "zz"};
    for (int i = 0; i < 6; i++)
        tok[256 + i] = (const unsigned char *)extra[i], len[256 + i] = strlen(extra[i]);
    int32_t a = id_of('a'), b = id_of('b'), c = id_of('c');
    int32_t left[5] = {a, 256, b, c, a}, right[5] = {b, c, c, c, a};
    error e = {0};
    CHECK_EQ(bpe_write(path, 263, tok, len, 5, left, right, 262, &e), HDLM_OK);
    return path;
}

/* The greedy merge-rank application, the definition: for each merge in rank order, merge every
 * occurrence left to right without overlap; repeat until no merge applies. */
static int naive(const bpe *b, const char *s, int32_t *out) {
    int n = (int)strlen(s);
    for (int i = 0; i < n; i++)
        out[i] = bpe_byte_id(b, (unsigned char)s[i]);
    for (;;) {
        int best = -1;
        for (int i = 0; i + 1 < n; i++)
            for (int r = 0; r < bpe_n_merges(b); r++) {
                int32_t l, rt, res;
                bpe_merge(b, r, &l, &rt, &res);
                if (out[i] == l && out[i + 1] == rt && (best < 0 || r < best)) best = r;
            }
        if (best < 0) return n;
        int32_t l, rt, res;
        bpe_merge(b, best, &l, &rt, &res);
        int w = 0;
        for (int i = 0; i < n; i++) {
            if (i + 1 < n && out[i] == l && out[i + 1] == rt)
                out[w++] = res, i++;
            else
                out[w++] = out[i];
        }
        n = w;
    }
}

static int same(const int32_t *a, int na, const int32_t *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void test_merges(void) {
    const char *path = make_vocab("v1");
    bpe *b;
    error e = {0};
    CHECK_EQ(bpe_load(path, "tiny", &b, &e), HDLM_OK);
    if (!b) return;
    CHECK_EQ(bpe_vocab(b), 263);
    CHECK_EQ(bpe_n_merges(b), 5);
    CHECK_EQ(bpe_eot(b), 262);
    CHECK_EQ(bpe_max_token_len(b), 13); /* <|endoftext|> */
    bpe_encoder *x;
    CHECK_EQ(bpe_encoder_new(b, &x, &e), HDLM_OK);
    int32_t ids[64], want[64];
    /* worked by hand: abc -> (a b) -> ab c -> (ab c) -> abc */
    CHECK_EQ(bpe_encode_piece(x, (const unsigned char *)"abc", 3, ids), 1);
    CHECK_EQ(ids[0], 257);
    /* bcab -> (a b) first [b c ab] -> (b c) [bc ab] */
    CHECK_EQ(bpe_encode_piece(x, (const unsigned char *)"bcab", 4, ids), 2);
    CHECK(ids[0] == 258 && ids[1] == 256);
    /* aaa -> leftmost (a a): [aa a]; ccc -> [cc c]; abcc -> [abc c] */
    CHECK_EQ(bpe_encode_piece(x, (const unsigned char *)"aaa", 3, ids), 2);
    CHECK(ids[0] == 260 && ids[1] == id_of('a'));
    CHECK_EQ(bpe_encode_piece(x, (const unsigned char *)"ccc", 3, ids), 2);
    CHECK(ids[0] == 259 && ids[1] == id_of('c'));
    CHECK_EQ(bpe_encode_piece(x, (const unsigned char *)"abcc", 4, ids), 2);
    CHECK(ids[0] == 257 && ids[1] == id_of('c'));
    /* the merge loop equals the greedy merge-rank application on random strings */
    uint64_t r = 12345;
    int agree = 1;
    for (int t = 0; t < 2000; t++) {
        char s[40];
        int n = 1 + (int)(t % 37);
        for (int i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            s[i] = "abcz"[(r >> 33) % 4];
        }
        s[n] = '\0';
        int k = (int)bpe_encode_piece(x, (const unsigned char *)s, (size_t)n, ids);
        int kw = naive(b, s, want);
        agree &= same(ids, k, want, kw);
    }
    CHECK(agree);
    /* a piece that is a token as a whole is that token (tiktoken), even one no merge makes */
    CHECK_EQ(bpe_encode_piece(x, (const unsigned char *)"zz", 2, ids), 2);
    CHECK_EQ(bpe_encode(x, "zz", 2, ids, &e), 1);
    CHECK_EQ(ids[0], 261);
    /* pieces: " ab" is ' ' + (ab); "abab" -> [ab ab] */
    CHECK_EQ(bpe_encode(x, "abab ab", 7, ids, &e), 4);
    CHECK(ids[0] == 256 && ids[1] == 256 && ids[2] == id_of(' ') && ids[3] == 256);
    /* a very long run: O(n log n), and still the greedy result (pairs of aa, then a) */
    size_t big = 200001;
    char *run = malloc(big + 1);
    int32_t *bids = malloc((big + 1) * sizeof *bids);
    memset(run, 'a', big);
    CHECK_EQ(bpe_encode(x, run, big, bids, &e), (int64_t)(big / 2 + 1));
    CHECK(bids[0] == 260 && bids[big / 2 - 1] == 260 && bids[big / 2] == id_of('a'));
    free(run);
    free(bids);
    bpe_encoder_free(x);

    /* the same vocabulary written again hashes the same; a different one does not */
    bpe *b2;
    CHECK_EQ(bpe_load(make_vocab("v2"), "tiny2", &b2, &e), HDLM_OK);
    CHECK_STR(bpe_sha256(b), bpe_sha256(b2));
    CHECK_EQ(strlen(bpe_sha256(b)), 64);
    bpe_free(b2);
    bpe_free(b);
}

/* arbitrary bytes round-trip through a BPE tokenizer, the cache included */
static void test_roundtrip(void) {
    char spec[160];
    snprintf(spec, sizeof spec, "bpe:%s/v1", dir);
    tokenizer t;
    error e = {0};
    CHECK_EQ(tokenizer_init(&t, spec, &e), HDLM_OK);
    CHECK_EQ(t.kind, TOKENIZER_BPE);
    CHECK_EQ(t.vocab, 263);
    CHECK_EQ(t.eot, 262);
    CHECK(!strncmp(tokenizer_label(&t), "bpe:/", 5)); /* resolved to an absolute path */
    char tag[32];
    tokenizer_file_tag(&t, tag);
    CHECK(!strncmp(tag, "bpe-", 4) && strlen(tag) == 16);
    uint64_t r = 99;
    int ok = 1;
    char s[600], back[600 * 13 + 1];
    int32_t ids[600];
    for (int trial = 0; trial < 300; trial++) {
        size_t n = (size_t)(trial * 7 % 600);
        for (size_t i = 0; i < n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            /* mostly a small alphabet (so merges and the cache fire), sometimes any byte */
            unsigned v = (unsigned)(r >> 40);
            s[i] = v % 5 == 0 ? (char)(v >> 8) : "abc z\n'"[(v >> 8) % 7];
        }
        int64_t k = tokenizer_encode(&t, s, n, ids);
        size_t w = tokenizer_decode(&t, ids, (size_t)k, back, sizeof back);
        ok &= k >= 0 && k <= (int64_t)n && w == n && !memcmp(back, s, n);
    }
    CHECK(ok);
    CHECK_EQ(tokenizer_unit_bytes(&t, 257), 3);
    CHECK_EQ(tokenizer_unit_bytes(&t, 262), 1);
    CHECK_EQ(tokenizer_unit_bytes(&t, 263), 0);
    CHECK(tokenizer_decode_cap(&t, 10) >= 10 * 13 + 1);
    int32_t eot = 262, oov = 300;
    CHECK_EQ(tokenizer_decode(&t, &eot, 1, back, sizeof back), 13);
    CHECK_STR(back, "<|endoftext|>");
    CHECK_EQ(tokenizer_decode(&t, &oov, 1, back, sizeof back), 3);
    CHECK_STR(back, "\xe2\x96\x88");
    /* the same directory again: the same shared vocabulary */
    tokenizer t2;
    CHECK_EQ(tokenizer_init(&t2, spec, &e), HDLM_OK);
    CHECK(t2.bpe == t.bpe);
}

static void test_docs(void) {
    char spec[160];
    snprintf(spec, sizeof spec, "bpe:%s/v1", dir);
    tokenizer t, tb;
    error e = {0};
    CHECK_EQ(tokenizer_init(&t, spec, &e), HDLM_OK);
    CHECK_EQ(tokenizer_init(&tb, "bytes", &e), HDLM_OK);
    int32_t ids[64];
    int64_t nd;
    /* "\n\nab\ncc\n \t\n\nabc\n\n" -> [ab \n cc \n] EOT [abc \n]: leading and trailing blank lines
     * dropped, a run of blank lines is one break */
    const char *s = "\n\nab\ncc\n \t\n\nabc\n\n";
    int64_t k = tokenizer_encode_docs(&t, s, strlen(s), TOKENIZER_DOCS_BLANK, ids, &nd, &e);
    CHECK_EQ(k, 7);
    CHECK_EQ(nd, 2);
    int32_t nl = id_of('\n');
    int32_t want[7] = {256, nl, 259, nl, 262, 257, nl};
    CHECK(same(ids, (int)k, want, 7));
    /* no breaks: the whole text; bytes has no end-of-text token */
    CHECK_EQ(tokenizer_encode_docs(&t, "ab\n\nab", 6, TOKENIZER_DOCS_NONE, ids, &nd, &e), 4);
    CHECK_EQ(nd, 1);
    CHECK_EQ(tokenizer_encode_docs(&tb, "a\n\nb", 4, TOKENIZER_DOCS_BLANK, ids, &nd, &e),
             HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "tokenizer bytes has no end-of-text token");
    /* a last line without newline; CRLF blank lines */
    k = tokenizer_encode_docs(&t, "ab\r\n\r\ncc", 8, TOKENIZER_DOCS_BLANK, ids, &nd, &e);
    CHECK_EQ(nd, 2);
    CHECK_EQ(k, 5); /* ab \r \n EOT cc */
    CHECK_EQ(ids[3], 262);
}

static void test_errors(void) {
    bpe *b;
    error e = {0};
    char p[160], q[200];
    snprintf(p, sizeof p, "%s/nothere", dir);
    CHECK_EQ(bpe_load(p, "x", &b, &e), HDLM_EIO);
    CHECK_CONTAINS(e.msg, "nothere/encoder.json: not found");
    snprintf(p, sizeof p, "bpe:%s/nothere", dir);
    tokenizer t;
    CHECK_EQ(tokenizer_init(&t, p, &e), HDLM_EIO);
    CHECK_CONTAINS(e.msg, "No such file or directory");

    /* a vocabulary without all 256 bytes */
    snprintf(p, sizeof p, "%s/bad1", dir);
    snprintf(q, sizeof q, "mkdir -p %s", p);
    CHECK_EQ(system(q), 0);
    snprintf(q, sizeof q, "%s/encoder.json", p);
    write_file(q, "{\"a\": 0, \"b\": 1}");
    snprintf(q, sizeof q, "%s/vocab.bpe", p);
    write_file(q, "#version: 0.2\n");
    CHECK_EQ(bpe_load(p, "x", &b, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "bad1/encoder.json: expected an object of >= 256 token -> id members");

    /* merge lines: unknown token, used before made, malformed */
    const char *base = make_vocab("bad2");
    snprintf(q, sizeof q, "%s/vocab.bpe", base);
    write_file(q, "#version: 0.2\na b\nab c\nq r\n");
    CHECK_EQ(bpe_load(base, "x", &b, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "bad2/vocab.bpe: line 4: the merge \"q r\" makes \"qr\", which is not in "
                          "encoder.json");
    write_file(q, "#version: 0.2\nab c\na b\n");
    CHECK_EQ(bpe_load(base, "x", &b, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg,
                   "bad2/vocab.bpe: line 2: token \"ab\" is used before a merge line makes it");
    write_file(q, "#version: 0.2\na b c\n");
    CHECK_EQ(bpe_load(base, "x", &b, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "bad2/vocab.bpe: line 2: expected two tokens \"A B\", found \"a b c\"");
    write_file(q, "#version: 0.2\na b\na b\n");
    CHECK_EQ(bpe_load(base, "x", &b, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "line 3: the merge \"a b\" is listed twice");
    write_file(q, "#version: 0.2\na \xc5\x90\n");
    CHECK_EQ(bpe_load(base, "x", &b, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "line 2: token \"\xc5\x90\": character U+0150, which no byte maps to");
}

/* GPT-2's own ids (when scripts/get-data.sh gpt2 has run) */
static void test_gpt2(void) {
    tokenizer t;
    error e = {0};
    if (tokenizer_init(&t, "gpt2", &e) != HDLM_OK) {
        printf("test_bpe: GPT-2 checks skipped: %s\n", e.msg);
        CHECK_CONTAINS(e.msg, "scripts/get-data.sh gpt2");
        return;
    }
    CHECK_EQ(t.vocab, 50257);
    CHECK_EQ(t.eot, 50256);
    CHECK_STR(tokenizer_label(&t), "gpt2");
    int32_t ids[64];
    CHECK_EQ(tokenizer_encode(&t, "Hello world", 11, ids), 2);
    CHECK(ids[0] == 15496 && ids[1] == 995);
    int64_t nd;
    CHECK_EQ(tokenizer_encode_docs(&t, "Hello\n\nworld", 12, TOKENIZER_DOCS_BLANK, ids, &nd, &e),
             4);
    CHECK(ids[0] == 15496 && ids[1] == 198 && ids[2] == 50256 && ids[3] == 6894);
    /* the text <|endoftext|> is ordinary text */
    int64_t k = tokenizer_encode(&t, "<|endoftext|>", 13, ids);
    CHECK(k > 1);
    char back[64];
    CHECK_EQ(tokenizer_decode(&t, ids, (size_t)k, back, sizeof back), 13);
    CHECK_STR(back, "<|endoftext|>");
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hdlm_bpe_XXXXXX");
    HDLM_ASSERT(mkdtemp(dir));
    test_mapping();
    test_pretok();
    test_merges();
    test_roundtrip();
    test_docs();
    test_errors();
    test_gpt2();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_bpe: could not remove %s\n", dir);
    return check_report("test_bpe");
}
