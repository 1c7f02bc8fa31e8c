/* Attention masks of the hyperschedule (docs/method.md "Attention masks") as per-row key ranges
 * (attn_row), built from the per-position states — never as a dense L x L matrix. settled x settled
 * : by context (full / causal / block_causal with block w, grid at 0) active  x active  : by block
 * type (full / causal) active  x settled : open;  settled x active : blocked;  anything with
 * worthless : blocked Settled positions form the prefix [0, n_s); the active region is [n_s, e]
 * with e the last active position; everything after e is worthless. A worthless row is fully
 * blocked (it then attends uniformly, docs/method.md "Attention masks"). Key index = position, so
 * the rows of a cached forward (keys = cached prefix ++ new positions) are the same rows sliced to
 * the new positions. */
#ifndef HDLM_MASK_H
#define HDLM_MASK_H

#include "nn/layers.h"

#include <stdint.h>

enum { MASK_CTX_FULL = 0, MASK_CTX_CAUSAL = 1, MASK_CTX_BLOCK_CAUSAL = 2 };
enum { MASK_BLOCK_FULL = 0, MASK_BLOCK_CAUSAL = 1 };

/* rows (L) from states (L) (HDLM_SETTLED / HDLM_ACTIVE / HDLM_WORTHLESS). */
void mask_rows_from_states(attn_row *rows, const uint8_t *state, int L, int context, int block_w,
                           int block_type);
/* Plain causal rows over L (the GPT / autoregressive layout): row i sees [0, i]. */
void mask_rows_causal(attn_row *rows, int L);
/* Every row sees every key (bidirectional). */
void mask_rows_full(attn_row *rows, int L);
/* Vectorised 2L layout (docs/method.md "The 2L (vectorised) layout"): positions [0, L) are the
 * clean copy with `context` among themselves; [L, 2L) the noisy copy in buckets [start_k, end_k)
 * (n_buckets, increasing, covering [0, L)); bucket k sees the clean positions [0, start_k) and
 * itself (full or causal). rows (2L).
 */
void mask_rows_vectorised(attn_row *rows, int L, const int32_t *bucket_start, int n_buckets,
                          int context, int block_w, int block_type);
/* 1 when key j is visible from row r (for tests and printing). */
int mask_row_allows(const attn_row *r, int j);
int mask_context_from_name(const char *s);  /* -1 when unknown */
const char *mask_context_name(int context); /* the inverse */
int mask_block_from_name(const char *s);    /* -1 when unknown */

#endif
