/* Batching: B windows of L consecutive tokens at offsets drawn from the run's rng, so the data
 * cursor is the rng state (saved with checkpoints for exact resume). */
#ifndef HDLM_BATCH_H
#define HDLM_BATCH_H

#include "base/error.h"
#include "base/rng.h"

#include <stdint.h>

/* out: (B, L). Fails (naming the sizes) when the split is shorter than L. */
int batch_draw(const int32_t *tokens, int64_t n, int64_t B, int64_t L, rng *r, int32_t *out,
               error *e);
/* Deterministic evaluation windows: window k starts at k*L (k < n/L). Returns count. */
int64_t batch_n_windows(int64_t n, int64_t L);

#endif
