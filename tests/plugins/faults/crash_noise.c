/* Fixture: "fixture_crash_noise", a masking noise whose `loss` segfaults (writes through NULL) at
 * its crash_at-th call, as a buggy plugin would. The host's crash guard must turn that into
 * "plugin fixture_crash_noise#N (...) crashed in op loss (SIGSEGV, ...)": test_plugin_crash.sh
 * trains with it through the real binary (the run must end failed with that message, exit 1) and
 * runs `hdlm plugins check` on it (crash_at = 1: the gradient check crashes and is one FAIL). */
#define BROKEN_CRASH
#include "../broken/mini_mask.h"

static const hdlm_option options[] = {
    {"crash_at", HDLM_OPT_INTEGER, "1", "the loss call (1-based, one per sequence) that crashes",
     NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "fixture_crash_noise",
    .version = "0.1.0",
    .summary = "test fixture: masking noise whose loss segfaults at the crash_at-th call",
    .options = options,
    .create = mm_create,
    .destroy = mm_destroy,
    .ops = &mm_ops,
};

HDLM_PLUGIN_DEFINE(desc)
