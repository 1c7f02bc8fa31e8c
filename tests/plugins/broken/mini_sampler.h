/* A small ancestral sampler (every ACTIVE masked position draws its next token from the noise
 * process's reverse row) shared by the broken sampler fixtures of this folder. Each fixture
 * defines one BROKEN_* macro before including it, which `hdlm plugins check` must name:
 *   BROKEN_FIXED  it "corrects" visible tokens, fixed (prompt) positions included
 *   BROKEN_TOKEN  it writes Vp, one past the last symbol, instead of its first draw */
#ifndef MINI_SAMPLER_H
#define MINI_SAMPLER_H

#include <hdlm/plugin.h>

static int ms_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    (void)args, (void)err, (void)err_cap;
    *self = NULL;
    return HDLM_OK;
}

static void ms_destroy(void *self) {
    (void)self;
}

static void ms_info(void *self, hdlm_info *info) {
    (void)self;
    info->needs = 0;
}

static int ms_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    (void)self, (void)err, (void)err_cap;
    int first = 1;
    for (int64_t j = 0; j < ctx->B * ctx->L; j++) {
        if (ctx->state[j] != HDLM_ACTIVE) continue;
#ifdef BROKEN_FIXED
        if (ctx->x[j] != ctx->mask_id) { /* a correction that forgets to look at ctx->fixed */
            ctx->x[j] = (ctx->x[j] + 1) % ctx->V;
            continue;
        }
#endif
        if (ctx->x[j] != ctx->mask_id || ctx->fixed[j]) continue;
        int32_t y = ctx->draw(ctx->core, ctx->probs + j * ctx->Vp, ctx->Vp);
#ifdef BROKEN_TOKEN
        if (first) y = ctx->Vp;
#endif
        first = 0;
        if (y != ctx->x[j])
            ctx->event(ctx->core, j / ctx->L, j % ctx->L, ctx->x[j], y, 1.0, HDLM_EVENT_UNMASK);
        ctx->x[j] = y;
    }
    (void)first;
    return HDLM_OK;
}

static const hdlm_sampler_ops ms_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = ms_info},
    .step = ms_step,
};

#define MINI_SAMPLER_PLUGIN(id, text)                                                              \
    static const hdlm_plugin desc = {                                                              \
        .abi_version = HDLM_ABI_VERSION,                                                           \
        .struct_size = sizeof(hdlm_plugin),                                                        \
        .kind = HDLM_KIND_SAMPLER,                                                                 \
        .name = id,                                                                                \
        .version = "0.1.0",                                                                        \
        .summary = text,                                                                           \
        .create = ms_create,                                                                       \
        .destroy = ms_destroy,                                                                     \
        .ops = &ms_ops,                                                                            \
    };                                                                                             \
    HDLM_PLUGIN_DEFINE(desc)

#endif
