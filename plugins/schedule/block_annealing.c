/* block_annealing: the paper's block hyperschedule (docs/method.md "block_annealing",
 * make_block_annealing(w, τ)). Blocks of w positions are denoised one after the other; inside the
 * current block every position shares one level, τ−1 down to 0, one level per step, so step s = b·τ
 * + 1 + k puts block b at level τ−1−k, blocks < b settled (0) and blocks > b worthless (τ). At the
 * step a block reaches level 0 it is still active; it is settled one step later. A partial last
 * block is truncated. n_steps = τ·⌈L/w⌉ (the reference's max_step − 1). Closed form: no tables are
 * stored. */
#include <hdlm/plugin.h>
#include <stdio.h>
#include <stdlib.h>

#define BA_MAX (1 << 20) /* bound on width and tau: keeps every product far inside int64 */

typedef struct block_annealing {
    int64_t width; /* w: positions per block */
    int32_t tau;   /* τ: levels per block, also the worthless level W */
} block_annealing;

static const hdlm_option ba_options[] = {
    {"width", HDLM_OPT_INTEGER, "16", "block width w: positions denoised together", NULL},
    {"tau", HDLM_OPT_INTEGER, "0",
     "levels per block tau (the worthless level W, steps per block); 0 = width", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static int ba_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double w = 0, tau = 0;
    host->opt_number(opts, "width", &w); /* declared with defaults: always present */
    host->opt_number(opts, "tau", &tau);
    if (w < 1 || w > BA_MAX) {
        snprintf(err, err_cap, "option 'width' must be in 1..%d, got %g", BA_MAX, w);
        return HDLM_EINVAL;
    }
    if (tau == 0) tau = w;
    if (tau < 2 || tau > BA_MAX) {
        /* τ = 1 leaves one level: the active block would sit at level 0 (t = a, an almost clean
         * input) and the reference divides by zero computing the level step Δ = (1−2a)/(τ−1) */
        snprintf(err, err_cap, "option 'tau' must be in 2..%d (or 0 for tau = width), got %g",
                 BA_MAX, tau);
        return HDLM_EINVAL;
    }
    block_annealing *s = malloc(sizeof *s);
    if (!s) return HDLM_ENOMEM;
    s->width = (int64_t)w;
    s->tau = (int32_t)tau;
    *self = s;
    return HDLM_OK;
}

static void ba_destroy(void *self) {
    free(self);
}

static int32_t ba_n_levels(void *self) {
    return ((const block_annealing *)self)->tau;
}

static int64_t ba_n_steps(void *self, int64_t L) {
    const block_annealing *s = self;
    if (L <= 0) return 0;
    return (L + s->width - 1) / s->width * s->tau;
}

static int ba_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    const block_annealing *s = self;
    int64_t n = ba_n_steps(self, L);
    if (L < 0 || step < 0 || step > n) {
        snprintf(err, err_cap, "step %lld is outside 0..%lld (n_steps for L = %lld)",
                 (long long)step, (long long)n, (long long)L);
        return HDLM_EINVAL;
    }
    if (step == 0) { /* the initial state: everything fully noised */
        for (int64_t i = 0; i < L; i++)
            level[i] = s->tau;
        *n_settled = 0;
        return HDLM_OK;
    }
    int64_t b = (step - 1) / s->tau, k = (step - 1) % s->tau;
    int64_t lo = b * s->width, hi = lo + s->width;
    int32_t active = s->tau - 1 - (int32_t)k;
    for (int64_t i = 0; i < L; i++)
        level[i] = i < lo ? 0 : i < hi ? active : s->tau;
    *n_settled = lo; /* < L for every step in range: block b starts inside the sequence */
    return HDLM_OK;
}

static uint32_t ba_growth(void *self, int64_t *block) {
    *block = ((const block_annealing *)self)->width;
    return HDLM_GROW_BLOCKS;
}

static void ba_info(void *self, hdlm_info *info) {
    (void)self;
    info->flags = 0;
}

static const hdlm_schedule_ops ba_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = ba_info},
    .n_levels = ba_n_levels,
    .n_steps = ba_n_steps,
    .levels = ba_levels,
    .growth = ba_growth,
};

static const hdlm_plugin ba_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "block_annealing",
    .version = "1.0.0",
    .summary = "block annealing hyperschedule: blocks of w positions go tau-1..0 together, left "
               "to right (semi-autoregressive; w >= L is MDLM/SEDD)",
    .options = ba_options,
    .create = ba_create,
    .destroy = ba_destroy,
    .ops = &ba_ops,
};

HDLM_PLUGIN_DEFINE(ba_desc)
