/* Fixture: a schedule plugin that loads fine but whose create always fails with HDLM_EINVAL and a
 * one-line message (as a real plugin would on a bad option value), so the host test can check how
 * create failures are reported. */
#include "hdlm/plugin.h"

#include <stdio.h>

static int cf_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double tau = -1;
    host->opt_number(opts, "tau", &tau);
    *self = NULL;
    snprintf(err, err_cap, "cannot create: tau must be > 0, got %g", tau);
    return HDLM_EINVAL;
}

static void cf_destroy(void *self) {}

static int32_t cf_n_levels(void *self) {
    return 0;
}

static int64_t cf_n_steps(void *self, int64_t L) {
    return 0;
}

static int cf_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    snprintf(err, err_cap, "unreachable");
    return HDLM_ESTATE;
}

static uint32_t cf_growth(void *self, int64_t *block) {
    *block = 1;
    return HDLM_GROW_TOKENS;
}

static void cf_info(void *self, hdlm_info *info) {
    (void)self;
    (void)info;
}

static const hdlm_schedule_ops cf_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = cf_info},
    .n_levels = cf_n_levels,
    .n_steps = cf_n_steps,
    .levels = cf_levels,
    .growth = cf_growth,
};

static const hdlm_option cf_options[] = {
    {"tau", HDLM_OPT_INTEGER, "0", "noise levels (the default 0 is rejected by create)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin cf_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "fixture_create_fails",
    .version = "0.1.0",
    .summary = "test fixture: create always fails",
    .options = cf_options,
    .create = cf_create,
    .destroy = cf_destroy,
    .ops = &cf_ops,
};

HDLM_PLUGIN_DEFINE(cf_desc)
