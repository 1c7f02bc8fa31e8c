/* A minimal hdlm plugin, built out of tree against plugin.h alone:
 *   cc -shared -fPIC -O2 -I<hdlm>/core/include example_diffusion.c -o example_diffusion.so
 *   HDLM_PLUGIN_PATH=$PWD hdlm plugins check example_diffusion
 * It is a hyperschedule where every position shares one noise level that falls from tau to 0,
 * one level per step: conventional (MDLM/SEDD-style) diffusion with tau discrete times.
 * docs/writing-plugins.md walks through it. */
#include <hdlm/plugin.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct self {
    int32_t tau;
} self;

static const hdlm_option options[] = {
    {"tau", HDLM_OPT_INTEGER, "16", "number of noise levels (steps)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static int create(const hdlm_create_args *args, void **out, char *err, size_t cap) {
    double tau;
    /* declared, so always present (default filled in) and already checked to be an integer */
    args->host->opt_number(args->opts, "tau", &tau);
    if (tau < 2 || tau > 1e6) { /* one level would leave the active positions at level 0 */
        snprintf(err, cap, "option 'tau' must be in 2..1000000, got %g", tau);
        return HDLM_EINVAL;
    }
    self *s = malloc(sizeof *s);
    if (!s) return HDLM_ENOMEM;
    s->tau = (int32_t)tau;
    *out = s;
    return HDLM_OK;
}

static void destroy(void *s) {
    free(s);
}

static int32_t n_levels(void *s) {
    return ((self *)s)->tau;
}

static int64_t n_steps(void *s, int64_t L) {
    (void)L;
    return ((self *)s)->tau;
}

static int levels(void *s, int64_t step, int64_t L, int32_t *level, int64_t *n_settled, char *err,
                  size_t cap) {
    int32_t tau = ((self *)s)->tau;
    if (step < 0 || step > tau) {
        snprintf(err, cap, "step %lld outside 0..%d", (long long)step, tau);
        return HDLM_EINVAL;
    }
    int32_t lv = step == 0 ? tau : tau - (int32_t)step; /* step k: level tau-k */
    for (int64_t i = 0; i < L; i++)
        level[i] = lv;
    *n_settled = 0;
    return HDLM_OK;
}

static uint32_t growth(void *s, int64_t *block) {
    (void)s;
    *block = 1 << 30; /* one block: nothing settles before the end */
    return HDLM_GROW_BLOCKS;
}

/* Facts of this instance: none to report (no continuous-time training). A schedule that offers
 * continuous time sets HDLM_INFO_CONTINUOUS here, per instance. */
static void info(void *self, hdlm_info *out) {
    (void)self;
    out->flags = 0;
}

static const hdlm_schedule_ops ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = info},
    .n_levels = n_levels,
    .n_steps = n_steps,
    .levels = levels,
    .growth = growth,
};

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "example_diffusion",
    .version = "1.0.0",
    .summary = "every position shares one level, tau..0 (MDLM/SEDD with tau discrete times)",
    .options = options,
    .create = create,
    .destroy = destroy,
    .ops = &ops,
};

HDLM_PLUGIN_DEFINE(desc)
