/* Tokenizers. `bytes`: every byte is a token (256 symbols; any UTF-8 text round-trips exactly).
 * `text8`: the text8 convention, 27 symbols: space = 0, 'a'..'z' = 1..26; encoding lower-cases
 * letters, maps every other character (digits, punctuation, newlines, non-ASCII) to space and
 * squeezes runs of spaces (a run becomes one space; a multi-byte UTF-8 character is one
 * separator), drops a leading space and keeps one trailing space, so published text8
 * bits-per-character numbers are comparable.
 * Extra symbols (mask) are appended after the base vocabulary by the component that needs them. */
#ifndef HDLM_TOKENIZER_H
#define HDLM_TOKENIZER_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

enum { TOKENIZER_BYTES = 1, TOKENIZER_TEXT8 = 2 };

typedef struct tokenizer {
    int kind;
    int32_t vocab; /* 256 or 27 */
} tokenizer;

int tokenizer_init(tokenizer *t, const char *name, error *e); /* "bytes" | "text8" */
/* Same from a stored kind (TOKENIZER_*); fails naming the kind when it is unknown. */
int tokenizer_init_kind(tokenizer *t, int kind, error *e);
const char *tokenizer_name(int kind); /* "unknown" for a kind that is not TOKENIZER_* */
/* Encodes n bytes of text into out (capacity >= n); returns the number of tokens. */
int64_t tokenizer_encode(const tokenizer *t, const char *text, size_t n, int32_t *out);
/* Decodes ids into out (NUL-terminated, truncated to cap-1); ids outside the vocabulary (e.g. a
 * mask symbol) are written as '_' for text8 and as U+2588 '█' for bytes. Returns bytes written. */
size_t tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap);

#endif
