/* Builders of attention rows from hyperschedule states (docs/method.md "Attention masks", "The 2L
 * (vectorised) layout"). */
#include "mask.h"

#include "hdlm/plugin.h"

#include <string.h>

static attn_row settled_row(int i, int n_s, int context, int w) {
    attn_row r = {0, 0, 0, 0};
    switch (context) {
    case MASK_CTX_FULL:
        r.hi1 = n_s;
        break;
    case MASK_CTX_CAUSAL:
        r.hi1 = i + 1;
        break;
    default: {
        int end = (i / w + 1) * w;
        r.hi1 = end < n_s ? end : n_s;
    }
    }
    return r;
}

void mask_rows_from_states(attn_row *rows, const uint8_t *state, int L, int context, int block_w,
                           int block_type) {
    int n_s = 0;
    while (n_s < L && state[n_s] == HDLM_SETTLED)
        n_s++;
    int e = n_s - 1;
    for (int i = n_s; i < L; i++)
        if (state[i] == HDLM_ACTIVE) e = i;
    if (block_w < 1) block_w = 1;
    for (int i = 0; i < L; i++) {
        attn_row r = {0, 0, 0, 0};
        if (i < n_s) {
            r = settled_row(i, n_s, context, block_w);
        } else if (i <= e) {
            r.lo1 = 0;
            r.hi1 = n_s;
            r.lo2 = n_s;
            r.hi2 = block_type == MASK_BLOCK_CAUSAL ? i + 1 : e + 1;
        }
        rows[i] = r;
    }
}

void mask_rows_causal(attn_row *rows, int L) {
    for (int i = 0; i < L; i++)
        rows[i] = (attn_row){0, i + 1, 0, 0};
}

void mask_rows_full(attn_row *rows, int L) {
    for (int i = 0; i < L; i++)
        rows[i] = (attn_row){0, L, 0, 0};
}

void mask_rows_vectorised(attn_row *rows, int L, const int32_t *bucket_start, int n_buckets,
                          int context, int block_w, int block_type) {
    if (block_w < 1) block_w = 1;
    for (int i = 0; i < L; i++)
        rows[i] = settled_row(i, L, context, block_w);
    for (int k = 0; k < n_buckets; k++) {
        int s = bucket_start[k], end = k + 1 < n_buckets ? bucket_start[k + 1] : L;
        for (int i = s; i < end; i++) {
            attn_row r = {0, s, L + s, block_type == MASK_BLOCK_CAUSAL ? L + i + 1 : L + end};
            rows[L + i] = r;
        }
    }
}

int mask_row_allows(const attn_row *r, int j) {
    return (j >= r->lo1 && j < r->hi1) || (j >= r->lo2 && j < r->hi2);
}

int mask_context_from_name(const char *s) {
    if (!strcmp(s, "full")) return MASK_CTX_FULL;
    if (!strcmp(s, "causal")) return MASK_CTX_CAUSAL;
    if (!strcmp(s, "block_causal")) return MASK_CTX_BLOCK_CAUSAL;
    return -1;
}

const char *mask_context_name(int context) {
    return context == MASK_CTX_FULL     ? "full"
           : context == MASK_CTX_CAUSAL ? "causal"
                                        : "block_causal";
}

int mask_block_from_name(const char *s) {
    if (!strcmp(s, "full")) return MASK_BLOCK_FULL;
    if (!strcmp(s, "causal")) return MASK_BLOCK_CAUSAL;
    return -1;
}
