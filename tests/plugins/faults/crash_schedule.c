/* Fixture: "fixture_crash_schedule", the block schedule of ../broken/mini_blocks.h whose n_steps
 * segfaults at its crash_at-th call. n_steps returns a count, not a status, so the crash guard
 * cannot hand the crash back to the caller: it prints "plugin ... crashed in op n_steps", lets the
 * Lua host mark the open runs failed with that message, and exits with status 70
 * (test_plugin_crash.sh). */
#define BROKEN_CRASH_N_STEPS
#include "../broken/mini_blocks.h"

static const hdlm_option options[] = {
    {"crash_at", HDLM_OPT_INTEGER, "1", "the n_steps call (1-based) that crashes", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "fixture_crash_schedule",
    .version = "0.1.0",
    .summary = "test fixture: block schedule whose n_steps segfaults at the crash_at-th call",
    .options = options,
    .create = mb_create,
    .destroy = mb_destroy,
    .ops = &mb_ops,
};

HDLM_PLUGIN_DEFINE(desc)
