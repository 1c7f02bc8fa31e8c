/* Word share (data/words.h): the word rule on hand-made windows (whitespace pieces, the edge
 * pieces dropped, punctuation stripped at both ends only, lower-casing, non-ASCII kept, pieces of
 * punctuation ignored), the set (duplicates, growth past its first capacity), token windows (the
 * window edges cut words; the end-of-text id is a blank line) and counts of known words. */
#include "check.h"
#include "data/tokenizer.h"
#include "data/words.h"

#include <stdio.h>
#include <string.h>

static void count(const word_set *ws, const char *text, int64_t *w, int64_t *k) {
    words_count(ws, text, strlen(text), w, k);
}

static void test_rule(void) {
    word_set *ws = word_set_new();
    CHECK(ws != NULL);
    /* edges: "x" and "y" touch the window's start and end */
    const char *text = "x The FOX, (dog) -- don't U.S. caf\xc3\xa9 y";
    CHECK_EQ(word_set_add_text(ws, text, strlen(text)), 0);
    CHECK_EQ(word_set_size(ws), 6);
    CHECK(word_set_has(ws, "the", 3));
    CHECK(word_set_has(ws, "fox", 3));
    CHECK(word_set_has(ws, "dog", 3));
    CHECK(word_set_has(ws, "don't", 5));
    CHECK(word_set_has(ws, "u.s", 3));
    CHECK(word_set_has(ws, "caf\xc3\xa9", 5));
    CHECK(!word_set_has(ws, "x", 1));
    CHECK(!word_set_has(ws, "y", 1));
    CHECK(!word_set_has(ws, "--", 2));
    CHECK(!word_set_has(ws, "", 0));
    /* a text that is one piece has no complete word; whitespace of every kind separates */
    int64_t w, k;
    count(ws, "thefoxdog", &w, &k);
    CHECK_EQ(w, 0);
    CHECK_EQ(k, 0);
    count(ws, "a\tThe\nfox\r\n\"Dog!\"\fcat\vb", &w, &k);
    CHECK_EQ(w, 4); /* the fox dog cat */
    CHECK_EQ(k, 3);
    count(ws, " the ", &w, &k); /* whitespace at both edges: the piece is complete */
    CHECK_EQ(w, 1);
    CHECK_EQ(k, 1);
    count(ws, "z ... !! ?? z", &w, &k); /* punctuation only: no words */
    CHECK_EQ(w, 0);
    /* duplicates and case do not add */
    CHECK_EQ(word_set_add_text(ws, "a THE The the b", 15), 0);
    CHECK_EQ(word_set_size(ws), 6);
    word_set_free(ws);
}

static void test_growth(void) {
    word_set *ws = word_set_new();
    char buf[16];
    for (int i = 0; i < 5000; i++) {
        int len = snprintf(buf, sizeof buf, " w%d ", i);
        CHECK(word_set_add_text(ws, buf, (size_t)len) == 0);
    }
    CHECK_EQ(word_set_size(ws), 5000);
    int found = 0;
    for (int i = 0; i < 5000; i++) {
        int len = snprintf(buf, sizeof buf, "W%d", i);
        found += word_set_has(ws, buf, (size_t)len);
    }
    CHECK_EQ(found, 5000);
    CHECK(!word_set_has(ws, "w5000", 5));
    word_set_free(ws);
}

static void test_tokens(void) {
    tokenizer t;
    error e = {0};
    CHECK(tokenizer_init(&t, "bytes", &e) == HDLM_OK);
    const char *s = "aa bb cc dd";
    int32_t ids[11];
    for (int i = 0; i < 11; i++)
        ids[i] = (unsigned char)s[i];
    /* windows of 6 tokens: "aa bb " and "cc dd": only "bb" is complete */
    word_set *ws = word_set_new();
    CHECK_EQ(word_set_add_tokens(ws, &t, ids, 11, 6), 0);
    CHECK_EQ(word_set_size(ws), 1);
    CHECK(word_set_has(ws, "bb", 2));
    /* one window: bb and cc */
    CHECK_EQ(word_set_add_tokens(ws, &t, ids, 11, 0), 0);
    CHECK_EQ(word_set_size(ws), 2);
    int64_t w, k;
    CHECK_EQ(words_count_tokens(ws, &t, ids, 11, &w, &k), 0);
    CHECK_EQ(w, 2);
    CHECK_EQ(k, 2);
    /* the end-of-text id separates like a blank line */
    tokenizer te = t;
    te.eot = 1000;
    int32_t with_eot[] = {'x', ' ', 'c', 'c', 1000, 'd', 'd', ' ', 'z'};
    CHECK_EQ(words_count_tokens(ws, &te, with_eot, 9, &w, &k), 0);
    CHECK_EQ(w, 2); /* cc, dd */
    CHECK_EQ(k, 1);
    word_set_free(ws);
}

int main(void) {
    test_rule();
    test_growth();
    test_tokens();
    return check_report("test_words");
}
