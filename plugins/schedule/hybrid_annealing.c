/* hybrid_annealing: blocks of w positions, a simple-annealing diagonal inside each block
 * (docs/method.md "hybrid_annealing", make_hybrid_annealing(w, τ, L)). Block b takes τ + w − 1
 * steps; at in-block step σ = 0 .. τ+w−2 its position j is at max(0, τ − 1 − max(0, σ − j));
 * earlier blocks are 0, later ones τ. A partial last block still gets τ + w − 1 steps (the last
 * ones all zero), so n_steps = ⌈L/w⌉·(τ + w − 1). Settled count as the reference behaves: a block
 * becomes settled the step after its last token reached level 0, as in block annealing — the
 * reference's behaviour — i.e. n_settled = w·⌊(s−1)/(τ+w−1)⌋ (its "+1 block when finished" test can
 * never fire). */
#include <hdlm/plugin.h>
#include <stdio.h>
#include <stdlib.h>

#define HA_MAX (1 << 20) /* bound on width and tau: keeps every product far inside int64 */

typedef struct hybrid_annealing {
    int64_t width; /* w: positions per block */
    int32_t tau;   /* τ: the worthless level W */
} hybrid_annealing;

static const hdlm_option ha_options[] = {
    {"width", HDLM_OPT_INTEGER, "16", "block width w: positions per block", NULL},
    {"tau", HDLM_OPT_INTEGER, "0", "number of levels tau (the worthless level W); 0 = width", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static int ha_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double w = 0, tau = 0;
    host->opt_number(opts, "width", &w); /* declared with defaults: always present */
    host->opt_number(opts, "tau", &tau);
    if (w < 1 || w > HA_MAX) {
        snprintf(err, err_cap, "option 'width' must be in 1..%d, got %g", HA_MAX, w);
        return HDLM_EINVAL;
    }
    if (tau == 0) tau = w;
    if (tau < 2 || tau > HA_MAX) {
        /* τ = 1 keeps every active position at level 0 (no noise) and the reference divides by
         * zero in Δ = (1−2a)/(τ−1) */
        snprintf(err, err_cap, "option 'tau' must be in 2..%d (or 0 for tau = width), got %g",
                 HA_MAX, tau);
        return HDLM_EINVAL;
    }
    hybrid_annealing *s = malloc(sizeof *s);
    if (!s) return HDLM_ENOMEM;
    s->width = (int64_t)w;
    s->tau = (int32_t)tau;
    *self = s;
    return HDLM_OK;
}

static void ha_destroy(void *self) {
    free(self);
}

static int32_t ha_n_levels(void *self) {
    return ((const hybrid_annealing *)self)->tau;
}

static int64_t ha_steps_per_block(const hybrid_annealing *s) {
    return s->tau + s->width - 1;
}

static int64_t ha_n_steps(void *self, int64_t L) {
    const hybrid_annealing *s = self;
    if (L <= 0) return 0;
    return (L + s->width - 1) / s->width * ha_steps_per_block(s);
}

static int ha_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    const hybrid_annealing *s = self;
    int64_t n = ha_n_steps(self, L);
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
    int64_t spb = ha_steps_per_block(s);
    int64_t b = (step - 1) / spb, sigma = (step - 1) % spb;
    int64_t lo = b * s->width, hi = lo + s->width;
    for (int64_t i = 0; i < L; i++) {
        if (i < lo) {
            level[i] = 0;
        } else if (i < hi) {
            int64_t behind = sigma - (i - lo); /* steps since position j = i − lo started moving */
            int64_t lv = s->tau - 1 - (behind > 0 ? behind : 0);
            level[i] = (int32_t)(lv > 0 ? lv : 0);
        } else {
            level[i] = s->tau;
        }
    }
    *n_settled = lo; /* < L: block b starts inside the sequence for every step in range */
    return HDLM_OK;
}

static uint32_t ha_growth(void *self, int64_t *block) {
    *block = ((const hybrid_annealing *)self)->width;
    return HDLM_GROW_BLOCKS;
}

static void ha_info(void *self, hdlm_info *info) {
    (void)self;
    info->flags = 0;
}

static const hdlm_schedule_ops ha_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = ha_info},
    .n_levels = ha_n_levels,
    .n_steps = ha_n_steps,
    .levels = ha_levels,
    .growth = ha_growth,
};

static const hdlm_plugin ha_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "hybrid_annealing",
    .version = "1.0.0",
    .summary = "hybrid annealing hyperschedule: blocks of w positions left to right, a simple "
               "annealing diagonal inside each block",
    .options = ha_options,
    .create = ha_create,
    .destroy = ha_destroy,
    .ops = &ha_ops,
};

HDLM_PLUGIN_DEFINE(ha_desc)
