/* Fixture: "probe_sampler", a sampler whose trajectory does not depend on the model: a masked
 * ACTIVE position unmasks with probability 1 − t_next/t_now (always when t_next = 0) and takes a
 * uniform real token, both from the host rng. Two runs with the same seed and schedule (say with
 * and without the KV cache) then see the same tokens at every step whatever the logits, so the
 * logits they record can be compared step by step. Every step call is recorded (probe.h) with
 * ctx->step, t_now, t_next, state, x before the step and the logits. */
#include "probe.h"

#include <hdlm/plugin.h>
#include <stdio.h>
#include <stdlib.h>

static int ps_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    (void)opts;
    probe_sampler_self *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_cap, "out of memory");
        return HDLM_ENOMEM;
    }
    p->host = host;
    *self = p;
    return HDLM_OK;
}

static void ps_destroy(void *self) {
    probe_sampler_self *p = self;
    if (!p) return;
    probe_log_free(&p->step);
    free(p);
}

static int ps_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    probe_sampler_self *p = self;
    const hdlm_host *host = p->host;
    if (probe_log_add(&p->step, ctx->step, ctx->B, ctx->L, ctx->Vp, ctx->t_now, ctx->t_next,
                      ctx->state, ctx->x, ctx->logits, NULL)) {
        snprintf(err, err_cap, "out of memory for the probe's record");
        return HDLM_ENOMEM;
    }
    if (ctx->mask_id < 0) return HDLM_OK;
    for (int64_t b = 0; b < ctx->B; b++)
        for (int64_t i = 0; i < ctx->L; i++) {
            int64_t j = b * ctx->L + i;
            if (ctx->fixed[j] || ctx->state[j] != HDLM_ACTIVE || ctx->x[j] != ctx->mask_id)
                continue;
            double t = ctx->t_now[j], s = ctx->t_next[j];
            double p_unmask = s <= 0 || t <= 0 ? 1.0 : 1.0 - s / t;
            if (host->uniform(ctx->rng) >= p_unmask) continue;
            int32_t tok = (int32_t)(host->uniform(ctx->rng) * ctx->V);
            if (tok >= ctx->V) tok = ctx->V - 1;
            ctx->event(ctx->core, b, i, ctx->x[j], tok, 1.0 / ctx->V, HDLM_EVENT_UNMASK);
            ctx->x[j] = tok;
        }
    return HDLM_OK;
}

static void ps_info(void *self, hdlm_info *info) {
    (void)self;
    (void)info;
}

static const hdlm_sampler_ops ps_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = ps_info},
    .step = ps_step,
};

static const hdlm_plugin ps_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "probe_sampler",
    .version = "1.0.0",
    .summary = "test probe: unmasks uniformly at the schedule's rate; records every step",
    .options = NULL,
    .create = ps_create,
    .destroy = ps_destroy,
    .ops = &ps_ops,
};

HDLM_PLUGIN_DEFINE(ps_desc)
