/* Fixture: a descriptor built for a future ABI (HDLM_ABI_VERSION + 1). The host must refuse it
 * after reading only abi_version, naming both versions. */
#include "hdlm/plugin.h"

#include <stddef.h>

static int ba_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    *self = NULL;
    return HDLM_OK;
}

static void ba_destroy(void *self) {}

static int ba_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    return HDLM_OK;
}

static void ba_info(void *self, hdlm_info *info) {
    (void)self;
    (void)info;
}

static const hdlm_sampler_ops ba_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = ba_info}, .step = ba_step};

static const hdlm_plugin ba_desc = {
    .abi_version = HDLM_ABI_VERSION + 1,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "fixture_bad_abi",
    .version = "0.1.0",
    .summary = "test fixture: wrong ABI version",
    .options = NULL,
    .create = ba_create,
    .destroy = ba_destroy,
    .ops = &ba_ops,
};

HDLM_PLUGIN_DEFINE(ba_desc)
