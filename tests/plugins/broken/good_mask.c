/* Control fixture: the correct masking noise the broken noise fixtures are variants of
 * (`hdlm plugins check` must pass every check). */
#include "mini_mask.h"

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "fixture_good_mask",
    .version = "0.1.0",
    .summary = "control fixture: a correct masking noise",
    .create = mm_create,
    .destroy = mm_destroy,
    .ops = &mm_ops,
};

HDLM_PLUGIN_DEFINE(desc)
