/* Fixture: a well-formed sampler plugin, "fixture_sampler", with no options (options == NULL):
 * unmasks every active masked position by drawing from the reverse-step probabilities. */
#include "hdlm/plugin.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct fixture_sampler {
    double *probs; /* (Vp) scratch, grown on demand */
    int32_t cap;
} fixture_sampler;

static int fsm_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    fixture_sampler *s = calloc(1, sizeof *s);
    if (!s) return HDLM_ENOMEM;
    *self = s;
    return HDLM_OK;
}

static void fsm_destroy(void *self) {
    fixture_sampler *s = self;
    if (!s) return;
    free(s->probs);
    free(s);
}

static int fsm_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    fixture_sampler *s = self;
    if (ctx->Vp > s->cap) {
        double *p = realloc(s->probs, sizeof(double) * (size_t)ctx->Vp);
        if (!p) return HDLM_ENOMEM;
        s->probs = p;
        s->cap = ctx->Vp;
    }
    for (int64_t b = 0; b < ctx->B; b++)
        for (int64_t i = 0; i < ctx->L; i++) {
            int64_t j = b * ctx->L + i;
            if (ctx->fixed[j] || ctx->state[j] != HDLM_ACTIVE || ctx->x[j] != ctx->V) continue;
            const double *rp = ctx->probs + j * ctx->Vp;
            for (int32_t v = 0; v < ctx->Vp; v++)
                s->probs[v] = rp[v];
            int32_t tok = ctx->draw(ctx->core, s->probs, ctx->Vp);
            if (tok == ctx->x[j]) continue;
            ctx->event(ctx->core, b, i, ctx->x[j], tok, s->probs[tok], HDLM_EVENT_UNMASK);
            ctx->x[j] = tok;
        }
    return HDLM_OK;
}

static void fsm_info(void *self, hdlm_info *info) {
    (void)self;
    (void)info;
}

static const hdlm_sampler_ops fsm_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = fsm_info},
    .step = fsm_step,
};

static const hdlm_plugin fsm_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "fixture_sampler",
    .version = "1.0.0",
    .summary = "test fixture: unmask every active position",
    .options = NULL,
    .create = fsm_create,
    .destroy = fsm_destroy,
    .ops = &fsm_ops,
};

HDLM_PLUGIN_DEFINE(fsm_desc)
