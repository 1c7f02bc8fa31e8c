/* Fixture: a descriptor that claims to be shorter than this hdlm's hdlm_plugin, as one built
 * against an older plugin.h would (it ends before `options`). The host must refuse it without
 * reading past struct_size, naming both sizes. */
#include "hdlm/plugin.h"

#include <stddef.h>

static int ss_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    *self = NULL;
    return HDLM_OK;
}

static void ss_destroy(void *self) {}

static int ss_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    return HDLM_OK;
}

static void ss_info(void *self, hdlm_info *info) {
    (void)self;
    (void)info;
}

static const hdlm_sampler_ops ss_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = ss_info}, .step = ss_step};

static const hdlm_plugin ss_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = offsetof(hdlm_plugin, options),
    .kind = HDLM_KIND_SAMPLER,
    .name = "fixture_short",
    .version = "0.1.0",
    .summary = "test fixture: descriptor from an older header",
    .options = NULL,
    .create = ss_create,
    .destroy = ss_destroy,
    .ops = &ss_ops,
};

HDLM_PLUGIN_DEFINE(ss_desc)
