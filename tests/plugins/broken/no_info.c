/* Broken fixture: a sampler whose ops head has no `info` op (required since ABI 2). The host must
 * refuse the file naming the missing op. */
#include <hdlm/plugin.h>

static int ni_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    (void)args, (void)err, (void)err_cap;
    *self = NULL;
    return HDLM_OK;
}

static void ni_destroy(void *self) {
    (void)self;
}

static int ni_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    (void)self, (void)ctx, (void)err, (void)err_cap;
    return HDLM_OK;
}

static const hdlm_sampler_ops ni_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = NULL},
    .step = ni_step,
};

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "broken_no_info",
    .version = "0.1.0",
    .summary = "broken fixture: no info op",
    .create = ni_create,
    .destroy = ni_destroy,
    .ops = &ni_ops,
};

HDLM_PLUGIN_DEFINE(desc)
