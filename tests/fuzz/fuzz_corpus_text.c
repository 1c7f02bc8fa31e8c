/* Fuzz target: the corpus text checks of tokfile_prepare (data/tokfile.c): empty file, NUL bytes
 * and invalid UTF-8 (overlongs, surrogates, > U+10FFFF, truncated sequences), then encoding,
 * splitting and writing. Input byte 0 picks the tokenizer (bit 0: text8, else bytes) and byte 1
 * the validation fraction (a value in [0, 0.5], or 0.7 / NaN to test the refusal); the rest is
 * the text. The UTF-8 verdict is checked against the JSON module's own validator (two independent
 * implementations of the same rule), and a prepared file must load back with the same counts. */
#include "base/json.h"
#include "data/tokfile.h"
#include "fuzz_util.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const char *tok = data[0] & 1 ? "text8" : "bytes";
    double frac = data[1] == 255 ? NAN : data[1] == 254 ? 0.7 : (double)data[1] / 253.0 * 0.5;
    const uint8_t *text = data + 2;
    size_t n = size - 2;
    char in[256], out[300];
    if (fuzz_write_temp(text, n, in, sizeof in)) return 0;
    snprintf(out, sizeof out, "%s.tok", in);
    tokfile_stats st;
    error e = {0};
    int rc = tokfile_prepare(in, out, tok, frac, 0x1234, &st, &e);
    int text_ok = n > 0 && !memchr(text, 0, n) && json_utf8_valid((const char *)text, n);
    int frac_ok = frac >= 0 && frac <= 0.5;
    if (rc == HDLM_OK) {
        FUZZ_REQUIRE(text_ok && frac_ok);
        FUZZ_REQUIRE(st.n_bytes == (int64_t)n && st.n_train + st.n_valid > 0);
        FUZZ_REQUIRE(st.n_train > 0 || frac > 0);
        corpus c;
        error e2 = {0};
        int lrc = corpus_load(out, &c, &e2);
        if (lrc) fprintf(stderr, "reload failed: %s\n", e2.msg);
        FUZZ_REQUIRE(lrc == HDLM_OK);
        FUZZ_REQUIRE(c.n_train == st.n_train && c.n_valid == st.n_valid);
        corpus_free(&c);
        unlink(out);
    } else {
        FUZZ_REQUIRE(e.msg[0] != '\0');
        /* valid text with a valid fraction may only fail for having no tokens (text8 keeps
         * letters and spaces only) */
        if (text_ok && frac_ok) {
            if (!strstr(e.msg, "produced no tokens")) fprintf(stderr, "refused: %s\n", e.msg);
            FUZZ_REQUIRE(strstr(e.msg, "produced no tokens") != NULL);
        }
        /* a refusal leaves nothing behind */
        FUZZ_REQUIRE(access(out, F_OK) != 0);
    }
    unlink(in);
    return 0;
}
