/* Fixture: a well-formed schedule plugin, "fixture_schedule", implementing real block annealing
 * levels (spec §1.4) so the host test can call ops->levels through the ABI and check values.
 * Not the production block_annealing plugin: no efficient-mode helpers, minimal checks. */
#include "hdlm/plugin.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct fixture_schedule {
    int64_t width; /* w: positions per block */
    int32_t tau;   /* τ: the worthless level */
} fixture_schedule;

static int fs_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double w, tau;
    if (host->opt_number(opts, "width", &w) || host->opt_number(opts, "tau", &tau)) {
        snprintf(err, err_cap, "options width and tau must be present");
        return HDLM_EINVAL;
    }
    if (w < 1) {
        snprintf(err, err_cap, "width must be >= 1, got %g", w);
        return HDLM_EINVAL;
    }
    if (tau < 1 || tau > 1e6) {
        snprintf(err, err_cap, "tau must be in 1..1000000, got %g", tau);
        return HDLM_EINVAL;
    }
    fixture_schedule *s = malloc(sizeof *s);
    if (!s) return HDLM_ENOMEM;
    s->width = (int64_t)w;
    s->tau = (int32_t)tau;
    *self = s;
    return HDLM_OK;
}

static void fs_destroy(void *self) {
    free(self);
}

static int32_t fs_n_levels(void *self) {
    return ((fixture_schedule *)self)->tau;
}

static int64_t fs_n_steps(void *self, int64_t L) {
    const fixture_schedule *s = self;
    if (L <= 0) return 0;
    return (L + s->width - 1) / s->width * s->tau; /* τ steps per block */
}

/* Step s = b·τ + 1 + k puts block b at level τ−1−k; earlier blocks are clean, later worthless. */
static int fs_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    const fixture_schedule *s = self;
    int64_t n = fs_n_steps(self, L);
    if (L < 0 || step < 0 || step > n) {
        snprintf(err, err_cap, "step must be in 0..%lld for L = %lld, got %lld", (long long)n,
                 (long long)L, (long long)step);
        return HDLM_EINVAL;
    }
    if (step == 0) {
        for (int64_t i = 0; i < L; i++)
            level[i] = s->tau;
        *n_settled = 0;
        return HDLM_OK;
    }
    int64_t b = (step - 1) / s->tau, k = (step - 1) % s->tau;
    int64_t lo = b * s->width, hi = lo + s->width;
    for (int64_t i = 0; i < L; i++)
        level[i] = i < lo ? 0 : i < hi ? (int32_t)(s->tau - 1 - k) : s->tau;
    *n_settled = lo < L ? lo : L;
    return HDLM_OK;
}

static uint32_t fs_growth(void *self, int64_t *block) {
    *block = ((fixture_schedule *)self)->width;
    return HDLM_GROW_BLOCKS;
}

static void fs_info(void *self, hdlm_info *info) {
    (void)self;
    (void)info;
}

static const hdlm_schedule_ops fs_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = fs_info},
    .n_levels = fs_n_levels,
    .n_steps = fs_n_steps,
    .levels = fs_levels,
    .growth = fs_growth,
};

static const hdlm_option fs_options[] = {
    {"width", HDLM_OPT_INTEGER, "4", "block width w (positions per block)", NULL},
    {"tau", HDLM_OPT_INTEGER, "4", "number of noise levels per block (the worthless level)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin fs_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "fixture_schedule",
    .version = "0.1.0",
    .summary = "test fixture: block annealing levels",
    .options = fs_options,
    .create = fs_create,
    .destroy = fs_destroy,
    .ops = &fs_ops,
};

HDLM_PLUGIN_DEFINE(fs_desc)
