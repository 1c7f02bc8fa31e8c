/* Broken fixture: a masking noise whose marginal rows sum to 1.05 (`hdlm plugins check` must
 * fail "marginal sums to 1" and, as corrupt follows the true marginal, "corrupt matches
 * marginal"). */
#define BROKEN_MARGINAL
#include "mini_mask.h"

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "broken_marginal",
    .version = "0.1.0",
    .summary = "broken fixture: marginal rows sum to 1.05",
    .create = mm_create,
    .destroy = mm_destroy,
    .ops = &mm_ops,
};

HDLM_PLUGIN_DEFINE(desc)
