/* Fixture: a second schedule plugin claiming the name "fixture_schedule", which good_schedule.so
 * already provides; the host must refuse whichever of the two is loaded second. */
#include "hdlm/plugin.h"

#include <stddef.h>

static int dn_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    *self = NULL;
    return HDLM_OK;
}

static void dn_destroy(void *self) {}

static int32_t dn_n_levels(void *self) {
    return 1;
}

static int64_t dn_n_steps(void *self, int64_t L) {
    return L;
}

static int dn_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    for (int64_t i = 0; i < L; i++)
        level[i] = i < step ? 0 : 1;
    *n_settled = step < L ? step : L;
    return HDLM_OK;
}

static uint32_t dn_growth(void *self, int64_t *block) {
    *block = 1;
    return HDLM_GROW_TOKENS;
}

static void dn_info(void *self, hdlm_info *info) {
    (void)self;
    (void)info;
}

static const hdlm_schedule_ops dn_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = dn_info},
    .n_levels = dn_n_levels,
    .n_steps = dn_n_steps,
    .levels = dn_levels,
    .growth = dn_growth,
};

static const hdlm_plugin dn_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "fixture_schedule",
    .version = "9.9.9",
    .summary = "test fixture: a name clash",
    .options = NULL,
    .create = dn_create,
    .destroy = dn_destroy,
    .ops = &dn_ops,
};

HDLM_PLUGIN_DEFINE(dn_desc)
