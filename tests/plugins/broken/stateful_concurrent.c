/* Broken fixture: a masking noise that declares its loss safe to call concurrently while the loss
 * depends on a call count kept in self (`hdlm plugins check` must fail "concurrent loss"). */
#define BROKEN_CONCURRENT
#include "mini_mask.h"

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "broken_concurrent",
    .version = "0.1.0",
    .summary = "broken fixture: declares HDLM_INFO_CONCURRENT but its loss keeps state in self",
    .create = mm_create,
    .destroy = mm_destroy,
    .ops = &mm_ops,
};

HDLM_PLUGIN_DEFINE(desc)
