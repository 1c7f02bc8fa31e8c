/* GPT-2 pre-tokenisation with PCRE2 (the only user of pcre2.h). The pattern is compiled and
 * JIT-compiled once per process; each pretok holds its own match data, so threads split in
 * parallel with one pretok each. Valid input (the common case) is matched in place; input with
 * invalid UTF-8 is matched on a copy in which every maximal invalid subpart became U+FFFD, and the
 * pieces are mapped back to the original bytes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/pretok.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* JavaScript's \s (WhiteSpace + LineTerminator), spelled out: js-tiktoken is the reference. */
#define WS                                                                                         \
    "\\t\\n\\x0b\\f\\r\\x20\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"         \
    "\\x{205f}\\x{3000}\\x{feff}"
static const char gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS
                                   "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

static pcre2_code *shared_code;
static int shared_jit;       /* 1 when JIT compilation worked */
static char shared_err[256]; /* why compilation failed, when it did */
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void compile_once(void) {
    int errcode;
    PCRE2_SIZE erroff;
    shared_code =
        pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &errcode, &erroff, NULL);
    if (!shared_code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        snprintf(shared_err, sizeof shared_err, "PCRE2 cannot compile the GPT-2 pattern: %s at %zu",
                 (const char *)msg, (size_t)erroff);
        return;
    }
    /* without JIT (a platform PCRE2 has none for) the interpreter gives the same pieces, slower */
    shared_jit = pcre2_jit_compile(shared_code, PCRE2_JIT_COMPLETE) == 0;
}

struct pretok {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
    unsigned char *sub; /* the U+FFFD-substituted copy, when the input has invalid UTF-8 */
    size_t *orig;       /* (sub length + 1) offset in the original for each offset in sub */
    size_t sub_cap;
};

int pretok_new(pretok **out, error *e) {
    *out = NULL;
    pthread_once(&shared_once, compile_once);
    if (!shared_code) return error_set(e, HDLM_EINVAL, "pretok: %s", shared_err);
    pretok *p = calloc(1, sizeof *p);
    if (!p) return error_set(e, HDLM_ENOMEM, "pretok: out of memory");
    p->md = pcre2_match_data_create_from_pattern(shared_code, NULL);
    p->mctx = pcre2_match_context_create(NULL);
    /* long runs of one class (a megabyte of spaces) backtrack over the lookahead: give the JIT
     * room instead of its 32 KiB default */
    if (shared_jit) p->stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!p->md || !p->mctx || (shared_jit && !p->stack)) {
        pretok_free(p);
        return error_set(e, HDLM_ENOMEM, "pretok: out of memory");
    }
    if (p->stack) pcre2_jit_stack_assign(p->mctx, NULL, p->stack);
    *out = p;
    return HDLM_OK;
}

void pretok_free(pretok *p) {
    if (!p) return;
    pcre2_match_data_free(p->md);
    pcre2_match_context_free(p->mctx);
    pcre2_jit_stack_free(p->stack);
    free(p->sub);
    free(p->orig);
    free(p);
}

size_t pretok_utf8_char(const unsigned char *s, size_t n, size_t *subpart) {
    unsigned char b = s[0];
    *subpart = 1;
    if (b < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b == 0xe0)
        len = 3, lo = 0xa0; /* overlong below U+0800 */
    else if (b == 0xed)
        len = 3, hi = 0x9f; /* UTF-16 surrogates */
    else if (b >= 0xe1 && b <= 0xef)
        len = 3;
    else if (b == 0xf0)
        len = 4, lo = 0x90; /* overlong below U+10000 */
    else if (b >= 0xf1 && b <= 0xf3)
        len = 4;
    else if (b == 0xf4)
        len = 4, hi = 0x8f; /* above U+10FFFF */
    else
        return 0; /* 80..c1, f5..ff: never a lead byte */
    /* the subpart grows while each next byte could still continue a valid sequence */
    for (size_t i = 1; i < len; i++) {
        if (i >= n) return 0;
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xbf;
        if (s[i] < l || s[i] > h) return 0;
        *subpart = i + 1;
    }
    *subpart = len;
    return len;
}

/* Offset of the first invalid byte, or n when all of text is valid UTF-8. */
static size_t first_invalid(const unsigned char *s, size_t n) {
    size_t i = 0, sub;
    while (i < n) {
        /* ASCII in words of 8: most text is mostly ASCII */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = pretok_utf8_char(s + i, n - i, &sub);
        if (!len) return i;
        i += len;
    }
    return n;
}

/* Builds p->sub (text with each invalid subpart as EF BF BD) and p->orig; returns its length. */
static int substitute(pretok *p, const unsigned char *s, size_t n, size_t *m, error *e) {
    size_t need = 3 * n + 1; /* worst case: every byte an invalid subpart */
    if (need > p->sub_cap) {
        unsigned char *ns = realloc(p->sub, need);
        if (ns) p->sub = ns;
        size_t *no = realloc(p->orig, need * sizeof *no);
        if (no) p->orig = no;
        if (!ns || !no) return error_set(e, HDLM_ENOMEM, "pretok: out of memory for %zu bytes", n);
        p->sub_cap = need;
    }
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t sub, len = pretok_utf8_char(s + i, n - i, &sub);
        if (len) {
            for (size_t k = 0; k < len; k++)
                p->orig[w] = i + k, p->sub[w++] = s[i + k];
            i += len;
        } else {
            static const unsigned char fffd[3] = {0xef, 0xbf, 0xbd};
            for (size_t k = 0; k < 3; k++)
                p->orig[w] = i, p->sub[w++] = fffd[k];
            i += sub;
        }
    }
    p->orig[w] = n;
    *m = w;
    return HDLM_OK;
}

int pretok_split(pretok *p, const char *text, size_t n, pretok_fn fn, void *ud, error *e) {
    HDLM_ASSERT(p && (text || n == 0) && fn);
    const unsigned char *orig = (const unsigned char *)text;
    const unsigned char *subj = orig;
    size_t m = n;
    int mapped = first_invalid(orig, n) < n;
    if (mapped) {
        int rc = substitute(p, orig, n, &m, e);
        if (rc < 0) return rc;
        subj = p->sub;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
    size_t at = 0;
    while (at < m) {
        int rc = shared_jit
                     ? pcre2_jit_match(shared_code, subj, m, at, 0, p->md, p->mctx)
                     : pcre2_match(shared_code, subj, m, at, PCRE2_NO_UTF_CHECK, p->md, p->mctx);
        size_t s0, s1;
        if (rc >= 0) {
            s0 = ov[0], s1 = ov[1];
        } else if (rc == PCRE2_ERROR_NOMATCH) {
            s0 = s1 = m; /* cannot happen (every character starts a match): keep the rest whole */
        } else {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return error_set(e, HDLM_EINVAL, "pretok: PCRE2 match failed at byte %zu: %s", at,
                             (const char *)msg);
        }
        /* a gap before the match (impossible for this pattern) is a piece of its own, so the
         * pieces always cover the text */
        size_t cut[3] = {at, s0, s1 > s0 ? s1 : s0};
        for (int k = 0; k < 2; k++) {
            if (cut[k + 1] <= cut[k]) continue;
            size_t a = mapped ? p->orig[cut[k]] : cut[k],
                   b = mapped ? p->orig[cut[k + 1]] : cut[k + 1];
            int r = fn(ud, orig + a, b - a);
            if (r) return r;
        }
        at = cut[2];
        if (s1 == s0 && at < m) { /* an empty match would not advance: take one character */
            size_t sub, len = pretok_utf8_char(subj + at, m - at, &sub);
            size_t b = at + (len ? len : sub);
            int r = fn(ud, orig + (mapped ? p->orig[at] : at),
                       (mapped ? p->orig[b] : b) - (mapped ? p->orig[at] : at));
            if (r) return r;
            at = b;
        }
    }
    return HDLM_OK;
}
