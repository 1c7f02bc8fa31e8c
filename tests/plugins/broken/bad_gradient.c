/* Broken fixture: a masking noise whose loss reports twice its true gradient (`hdlm plugins check`
 * must fail "loss gradient"). */
#define BROKEN_GRADIENT
#include "mini_mask.h"

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "broken_gradient",
    .version = "0.1.0",
    .summary = "broken fixture: dlogits is twice the gradient of the loss",
    .create = mm_create,
    .destroy = mm_destroy,
    .ops = &mm_ops,
};

HDLM_PLUGIN_DEFINE(desc)
