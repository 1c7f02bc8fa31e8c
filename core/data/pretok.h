/* GPT-2 pre-tokenisation: cuts a byte string into the pieces that byte-level BPE then merges
 * inside, with GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * matched by PCRE2 (UTF + UCP, JIT) with the semantics of js-tiktoken, the reference this project
 * checks against: case-sensitive ('S is not a contraction) and `\s` as JavaScript defines it
 * (TAB LF VT FF CR, U+0020, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000 and U+FEFF; not U+0085 or U+180E, which PCRE2's own UCP `\s` would include).
 * Invalid UTF-8 is matched the way js-tiktoken sees it after a WHATWG UTF-8 decode: every maximal
 * invalid subpart stands in for one U+FFFD (a symbol, so it joins ` ?[^\s\p{L}\p{N}]+` runs), but
 * the pieces handed out are the original bytes, so nothing is lost. Pieces cover the input exactly,
 * in order. */
#ifndef HDLM_PRETOK_H
#define HDLM_PRETOK_H

#include "base/error.h"

#include <stddef.h>

/* Matching state for one thread (the compiled pattern itself is shared). */
typedef struct pretok pretok;

int pretok_new(pretok **out, error *e);
void pretok_free(pretok *p); /* NULL ok */

/* Called once per piece with its original bytes; a non-zero return stops the split and becomes
 * pretok_split's return value. */
typedef int (*pretok_fn)(void *ud, const unsigned char *piece, size_t len);

/* Splits text[0..n) into pieces. Returns HDLM_OK, fn's non-zero value, or a negative status with e
 * set (out of memory, a PCRE2 failure). */
int pretok_split(pretok *p, const char *text, size_t n, pretok_fn fn, void *ud, error *e);

/* Length of the valid UTF-8 character at s[0] (n > 0 bytes available), or 0 when s starts an
 * invalid sequence; then *subpart is the length of its maximal subpart (the WHATWG decoder's unit
 * for one U+FFFD: the lead byte plus the continuation bytes that were still possible). */
size_t pretok_utf8_char(const unsigned char *s, size_t n, size_t *subpart);

#endif
