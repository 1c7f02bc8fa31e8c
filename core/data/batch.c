/* Batching: random windows for training (offsets from the caller's rng, in batch order, so the
 * rng state alone is the data cursor) and the count of fixed windows for evaluation. No
 * shuffling buffers or epochs: windows are drawn with replacement. */
#include "data/batch.h"

#include <string.h>

int batch_draw(const int32_t *tokens, int64_t n, int64_t B, int64_t L, rng *r, int32_t *out,
               error *e) {
    HDLM_ASSERT(r && out && (tokens || n == 0));
    if (B <= 0 || L <= 0)
        return error_set(e, HDLM_EINVAL, "batch: batch size %lld and window %lld must be positive",
                         (long long)B, (long long)L);
    if (n < L)
        return error_set(e, HDLM_EINVAL,
                         "split has %lld tokens, shorter than one window of %lld; use a shorter "
                         "seq_len or a bigger corpus",
                         (long long)n, (long long)L);
    /* out[b, :] = tokens[off_b : off_b + L], off_b uniform in [0, n - L]. */
    for (int64_t b = 0; b < B; b++) {
        int64_t off = (int64_t)rng_below(r, (uint64_t)(n - L + 1));
        memcpy(out + b * L, tokens + off, (size_t)L * sizeof *out);
    }
    return HDLM_OK;
}

int64_t batch_n_windows(int64_t n, int64_t L) {
    if (n <= 0 || L <= 0) return 0;
    return n / L;
}
