/* Word share: a judge-free generation metric — the share of a text's words that occur in the
 * training corpus' vocabulary.
 *
 * A word is made as follows. The text is cut at ASCII whitespace (space, \t, \n, \v, \f, \r) into
 * pieces; the leading and trailing bytes of a piece that are not ASCII letters or digits are
 * stripped (a byte >= 0x80, part of a non-ASCII character, counts as a letter, so "café" stays
 * whole; inner punctuation stays: "don't", "u.s."  -> "u.s"); ASCII letters are lower-cased; an
 * empty result (a piece of punctuation only, "--") is no word. A text passed here is a *window*
 * cut from a stream (a training chunk, a generated sample), so the piece touching its start and
 * the piece touching its end may be cut words: they are not counted (a piece counts only with
 * whitespace on both sides). "x The fox, zzz y" has the words "the", "fox", "zzz".
 *
 * The vocabulary of a corpus is the set of words of its training split, decoded window by window
 * (words_add_tokens). The word share of samples is (known words) / (words), pooled over samples. */
#ifndef HDLM_WORDS_H
#define HDLM_WORDS_H

#include "data/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct word_set word_set;

word_set *word_set_new(void); /* NULL when out of memory */
void word_set_free(word_set *ws);
int64_t word_set_size(const word_set *ws); /* distinct words */
/* Adds the words of one window of text. Returns 0, or -1 when out of memory. */
int word_set_add_text(word_set *ws, const char *text, size_t n);
/* Whether w (already a word: stripped and lower-cased) is in the set. */
int word_set_has(const word_set *ws, const char *w, size_t n);
/* Adds the words of a token stream decoded with t, in windows of `window` tokens (the token file's
 * chunks), the end-of-text id standing for a blank line. Returns 0, or -1 when out of memory. */
int word_set_add_tokens(word_set *ws, const tokenizer *t, const int32_t *ids, int64_t n,
                        int64_t window);
/* Counts the words of one window of text and how many of them are in ws. */
void words_count(const word_set *ws, const char *text, size_t n, int64_t *words, int64_t *known);
/* The same for token ids decoded with t (end-of-text as a blank line). -1 when out of memory. */
int words_count_tokens(const word_set *ws, const tokenizer *t, const int32_t *ids, int64_t n,
                       int64_t *words, int64_t *known);

#endif
