/* A second minimal hdlm plugin, a sampler, built out of tree against plugin.h alone:
 *   cc -shared -fPIC -O2 -I<hdlm>/core/include example_greedy.c -o example_greedy.so
 *   HDLM_PLUGIN_PATH=$PWD hdlm plugins check example_greedy
 * At every step each masked, active, non-fixed position is unmasked with the probability the
 * noise process's reverse row gives it (1 - probs[mask], one host->uniform draw per position),
 * and then takes its most probable real token instead of a random one (greedy decoding in the
 * order the schedule reveals positions). Option `min_prob`: before the last step, a position
 * whose best token has less than this probability among the real tokens stays masked for a later
 * step. Needs a noise process with a mask symbol (absorbing, epsilon_hybrid, gamma_hybrid). */
#include <hdlm/plugin.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct greedy {
    const hdlm_host *host; /* kept for host->uniform */
    double min_prob;
} greedy;

static const hdlm_option options[] = {
    {"min_prob", HDLM_OPT_NUMBER, "0",
     "before the last step, unmask only when the best token has at least this probability", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static int create(const hdlm_create_args *args, void **out, char *err, size_t cap) {
    double min_prob;
    args->host->opt_number(args->opts, "min_prob", &min_prob); /* declared: always present */
    if (!(min_prob >= 0 && min_prob <= 1)) {
        snprintf(err, cap, "option 'min_prob' must be in [0, 1], got %g", min_prob);
        return HDLM_EINVAL;
    }
    /* the host tells a sampler the noise's mask when it knows it (-1: none, or not known yet) */
    if (args->n_extra >= 0 && args->mask_id < 0) {
        snprintf(err, cap, "example_greedy needs a noise process with a mask symbol");
        return HDLM_EINVAL;
    }
    greedy *g = malloc(sizeof *g);
    if (!g) return HDLM_ENOMEM;
    g->host = args->host;
    g->min_prob = min_prob;
    *out = g;
    return HDLM_OK;
}

static void destroy(void *self) {
    free(self);
}

static void info(void *self, hdlm_info *out) {
    (void)self;
    out->needs = 0; /* any process with a mask; no score model needed */
}

static int step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t cap) {
    const greedy *g = self;
    if (ctx->struct_size < sizeof(hdlm_sampler_ctx) || ctx->mask_id < 0) {
        snprintf(err, cap, "example_greedy needs a process with a mask symbol (mask_id = %d)",
                 ctx->mask_id);
        return HDLM_EINVAL;
    }
    const int last = ctx->step == ctx->n_steps;
    for (int64_t j = 0; j < ctx->B * ctx->L; j++) {
        if (ctx->state[j] != HDLM_ACTIVE || ctx->fixed[j] || ctx->x[j] != ctx->mask_id) continue;
        const double *p = ctx->probs + j * ctx->Vp;
        const double u = g->host->uniform(ctx->rng); /* one draw per candidate, always */
        if (u >= 1 - p[ctx->mask_id]) continue;      /* stays masked at this step */
        int32_t best = 0;
        double total = 0;
        for (int32_t y = 0; y < ctx->V; y++) {
            total += p[y];
            if (p[y] > p[best]) best = y;
        }
        if (!last && total > 0 && p[best] / total < g->min_prob) continue;
        ctx->event(ctx->core, j / ctx->L, j % ctx->L, ctx->x[j], best,
                   total > 0 ? p[best] / total : 0, HDLM_EVENT_UNMASK);
        ctx->x[j] = best;
    }
    return HDLM_OK;
}

static const hdlm_sampler_ops ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = info},
    .step = step,
};

static const hdlm_plugin desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "example_greedy",
    .version = "1.0.0",
    .summary = "unmask as the process says, but take the most probable token (greedy)",
    .options = options,
    .create = create,
    .destroy = destroy,
    .ops = &ops,
};

HDLM_PLUGIN_DEFINE(desc)
