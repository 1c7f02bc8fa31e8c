/* autoregressive: one position per step goes from fully noised to clean, left to right — the
 * paper's AR special case (docs/method.md "Schedules"), which the reference declares but cannot
 * build. Levels use W = 2: at step s (1..L) positions [0, s−1) are settled (level 0), position s−1
 * is active at level 1 (t = a + Δ = 1 − a: a fully masked input in practice) and positions >= s are
 * worthless (level 2). W = 1 would put the active token at level 0, i.e. t = a = 1e-3, an almost
 * clean input — the degenerate case where the reference also divides by zero. n_steps = L. Growth
 * is whole blocks of one position: the settled prefix grows by one complete position per step,
 * so causal and block-causal KV caches stay exact. */
#include <hdlm/plugin.h>
#include <stdio.h>
#include <stdlib.h>

#define AR_W 2 /* worthless level; the active token sits at level 1 */

static int ar_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    (void)host;
    (void)opts;
    (void)err;
    (void)err_cap;
    *self = NULL; /* stateless: every op is a closed form of (step, L) */
    return HDLM_OK;
}

static void ar_destroy(void *self) {
    (void)self;
}

static int32_t ar_n_levels(void *self) {
    (void)self;
    return AR_W;
}

static int64_t ar_n_steps(void *self, int64_t L) {
    (void)self;
    return L > 0 ? L : 0;
}

static int ar_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    int64_t n = ar_n_steps(self, L);
    if (L < 0 || step < 0 || step > n) {
        snprintf(err, err_cap, "step %lld is outside 0..%lld (n_steps for L = %lld)",
                 (long long)step, (long long)n, (long long)L);
        return HDLM_EINVAL;
    }
    /* step 0 falls out of the same formula: position -1 "active", so everything is at W */
    for (int64_t i = 0; i < L; i++)
        level[i] = i < step - 1 ? 0 : i == step - 1 ? 1 : AR_W;
    *n_settled = step > 0 ? step - 1 : 0;
    return HDLM_OK;
}

static uint32_t ar_growth(void *self, int64_t *block) {
    (void)self;
    *block = 1;
    return HDLM_GROW_BLOCKS;
}

static void ar_info(void *self, hdlm_info *info) {
    (void)self;
    info->flags = 0;
}

static const hdlm_schedule_ops ar_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = ar_info},
    .n_levels = ar_n_levels,
    .n_steps = ar_n_steps,
    .levels = ar_levels,
    .growth = ar_growth,
};

static const hdlm_plugin ar_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "autoregressive",
    .version = "1.0.0",
    .summary = "autoregressive hyperschedule: each position jumps from fully noised to clean in "
               "one step, left to right (the paper's AR special case)",
    .options = NULL,
    .create = ar_create,
    .destroy = ar_destroy,
    .ops = &ar_ops,
};

HDLM_PLUGIN_DEFINE(ar_desc)
