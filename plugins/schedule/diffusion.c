/* diffusion: conventional (MDLM/SEDD-style) diffusion as a hyperschedule (docs/method.md
 * "Schedules"): every position shares one level, step k (1..τ) puts all of them at τ − k; W = τ,
 * n_steps = τ, nothing is settled before the end. The same as block annealing with w >= L, the
 * reference's shipped configs. Option `continuous` asks for MDLM training (one t ~ U per sequence):
 * the instance then reports HDLM_INFO_CONTINUOUS from info; levels still define generation. */
#include <hdlm/plugin.h>
#include <stdio.h>
#include <stdlib.h>

#define DF_MAX   (1 << 20) /* bound on tau */
#define DF_BLOCK (1 << 30) /* "one block": larger than any sequence, still fits an int */

typedef struct diffusion {
    int32_t tau;    /* τ: number of steps, also the worthless level W */
    int continuous; /* option `continuous`: reported by info */
} diffusion;

static const hdlm_option df_options[] = {
    {"tau", HDLM_OPT_INTEGER, "16", "number of discrete noise levels tau (= generation steps)",
     NULL},
    {"continuous", HDLM_OPT_BOOL, "false",
     "train in continuous time (t ~ U per sequence, as MDLM trains); levels still drive sampling",
     NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static int df_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double tau = 0;
    host->opt_number(opts, "tau", &tau); /* declared with a default: always present */
    if (tau < 2 || tau > DF_MAX) {
        /* τ = 1 would run one step from level 0 (t = a, an almost clean input): no diffusion */
        snprintf(err, err_cap, "option 'tau' must be in 2..%d, got %g", DF_MAX, tau);
        return HDLM_EINVAL;
    }
    diffusion *s = malloc(sizeof *s);
    if (!s) return HDLM_ENOMEM;
    s->tau = (int32_t)tau;
    double cont = 0;
    host->opt_number(opts, "continuous", &cont);
    s->continuous = cont != 0;
    *self = s;
    return HDLM_OK;
}

static void df_destroy(void *self) {
    free(self);
}

static int32_t df_n_levels(void *self) {
    return ((const diffusion *)self)->tau;
}

static int64_t df_n_steps(void *self, int64_t L) {
    return L > 0 ? ((const diffusion *)self)->tau : 0;
}

static int df_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                     char *err, size_t err_cap) {
    const diffusion *s = self;
    int64_t n = df_n_steps(self, L);
    if (L < 0 || step < 0 || step > n) {
        snprintf(err, err_cap, "step %lld is outside 0..%lld (n_steps for L = %lld)",
                 (long long)step, (long long)n, (long long)L);
        return HDLM_EINVAL;
    }
    int32_t lv = s->tau - (int32_t)step; /* step 0: τ, everything worthless */
    for (int64_t i = 0; i < L; i++)
        level[i] = lv;
    *n_settled = 0; /* the last step leaves every position at level 0, still active */
    return HDLM_OK;
}

static uint32_t df_growth(void *self, int64_t *block) {
    (void)self;
    *block = DF_BLOCK; /* one block: the whole sequence */
    return HDLM_GROW_BLOCKS;
}

static void df_info(void *self, hdlm_info *info) {
    info->flags = ((const diffusion *)self)->continuous ? HDLM_INFO_CONTINUOUS : 0;
}

static const hdlm_schedule_ops df_ops = {
    .head = {.struct_size = sizeof(hdlm_schedule_ops), .info = df_info},
    .n_levels = df_n_levels,
    .n_steps = df_n_steps,
    .levels = df_levels,
    .growth = df_growth,
};

static const hdlm_plugin df_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SCHEDULE,
    .name = "diffusion",
    .version = "1.0.0",
    .summary = "conventional diffusion hyperschedule (MDLM/SEDD): all positions share one level, "
               "tau..0",
    .options = df_options,
    .create = df_create,
    .destroy = df_destroy,
    .ops = &df_ops,
};

HDLM_PLUGIN_DEFINE(df_desc)
