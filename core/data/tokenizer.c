/* Tokenizers: `bytes` (identity on bytes) and `text8` (27 symbols, lower-case letters and space).
 * Encoding is a single streaming pass with no allocation; there is no learned vocabulary (BPE
 * and friends are deliberately out of scope: both tokenizers are fixed functions of the text). */
#include "data/tokenizer.h"

#include <string.h>

int tokenizer_init(tokenizer *t, const char *name, error *e) {
    HDLM_ASSERT(t);
    if (name && !strcmp(name, "bytes")) return tokenizer_init_kind(t, TOKENIZER_BYTES, e);
    if (name && !strcmp(name, "text8")) return tokenizer_init_kind(t, TOKENIZER_TEXT8, e);
    return error_set(e, HDLM_EINVAL, "tokenizer: unknown tokenizer '%s', expected bytes or text8",
                     name ? name : "(null)");
}

int tokenizer_init_kind(tokenizer *t, int kind, error *e) {
    HDLM_ASSERT(t);
    switch (kind) {
    case TOKENIZER_BYTES:
        *t = (tokenizer){.kind = kind, .vocab = 256};
        return HDLM_OK;
    case TOKENIZER_TEXT8:
        *t = (tokenizer){.kind = kind, .vocab = 27};
        return HDLM_OK;
    default:
        return error_set(e, HDLM_EINVAL,
                         "tokenizer: unknown tokenizer kind %d, expected %d (bytes) or %d (text8)",
                         kind, TOKENIZER_BYTES, TOKENIZER_TEXT8);
    }
}

const char *tokenizer_name(int kind) {
    switch (kind) {
    case TOKENIZER_BYTES:
        return "bytes";
    case TOKENIZER_TEXT8:
        return "text8";
    default:
        return "unknown";
    }
}

/* text8: letters keep their identity (case folded), everything else is a word separator. A run of
 * separators, however long and whatever bytes it is made of (a multi-byte UTF-8 character
 * included), becomes one space, and nothing is emitted before the first letter. */
static int64_t text8_encode(const unsigned char *s, size_t n, int32_t *out) {
    int64_t k = 0;
    int pending_space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = s[i];
        if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch - 'A' + 'a');
        if (ch >= 'a' && ch <= 'z') {
            if (pending_space && k > 0) out[k++] = 0;
            pending_space = 0;
            out[k++] = 1 + (ch - 'a');
        } else {
            pending_space = 1;
        }
    }
    /* A trailing separator run is kept as one space, as the text8 convention ends words that way.
     */
    if (pending_space && k > 0) out[k++] = 0;
    return k;
}

int64_t tokenizer_encode(const tokenizer *t, const char *text, size_t n, int32_t *out) {
    HDLM_ASSERT(t && (text || n == 0) && (out || n == 0));
    const unsigned char *s = (const unsigned char *)text;
    if (t->kind == TOKENIZER_TEXT8) return text8_encode(s, n, out);
    HDLM_ASSERT(t->kind == TOKENIZER_BYTES);
    for (size_t i = 0; i < n; i++)
        out[i] = s[i];
    return (int64_t)n;
}

size_t tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    HDLM_ASSERT(t && (ids || n == 0) && (out || cap == 0));
    if (cap == 0) return 0;
    static const char block[] = "\xe2\x96\x88"; /* U+2588 FULL BLOCK in UTF-8 */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        char one;
        if (t->kind == TOKENIZER_TEXT8) {
            one = id == 0 ? ' ' : (id >= 1 && id <= 26) ? (char)('a' + id - 1) : '_';
        } else if (id >= 0 && id <= 255) {
            one = (char)(unsigned char)id;
        } else {
            /* Write the block whole or not at all, so truncation never leaves half a character. */
            if (w + 3 > cap - 1) break;
            memcpy(out + w, block, 3);
            w += 3;
            continue;
        }
        if (w + 1 > cap - 1) break;
        out[w++] = one;
    }
    out[w] = '\0';
    return w;
}
