/* analytic: the γ family's Tweedie τ-leaping predictor (docs/method.md "gamma_hybrid"): every
 * ACTIVE, non-fixed position takes a draw from its whole reverse row (Vp entries: real tokens and
 * the mask "stay" channel), which the score process already built from the staggered score and the
 * transposed transition, with the mask channel forced to 0 where the position must be fully
 * denoised. A visible token may move to another one: that is the γ family's error correction. Needs
 * a score process (info needs = HDLM_INFO_SCORE; the loop refuses others). No extra rules of its
 * own. Draw order: row-major over (B, L); one ctx->draw over the Vp row entries per ACTIVE
 * non-fixed position, point masses included (no host->uniform). Events: M → token UNMASK, token →
 * other token CORRECT, token → M REMASK; p is the token's row probability normalised by the row sum
 * (before the run's temperature/top-k/top-p). */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct analytic {
    int unused; /* no state: one row draw per position */
} analytic;

static int ay_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    (void)host;
    (void)opts;
    analytic *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, err_cap, "out of memory");
        return HDLM_ENOMEM;
    }
    *self = a;
    return HDLM_OK;
}

static void ay_destroy(void *self) {
    free(self);
}

/* What step relies on: the arrays it reads, a mask id among the extra symbols, tokens in range. */
static int ay_check(const hdlm_sampler_ctx *c, char *err, size_t err_cap) {
    if (!c || c->struct_size < sizeof(hdlm_sampler_ctx)) {
        snprintf(err, err_cap, "sampler ctx of %u bytes, this plugin needs %zu",
                 c ? c->struct_size : 0u, sizeof(hdlm_sampler_ctx));
        return HDLM_EINVAL;
    }
    if (c->B < 0 || c->L < 0 || c->V < 1 || c->Vp < c->V) {
        snprintf(err, err_cap, "shape B = %lld, L = %lld, V = %d, Vp = %d is invalid",
                 (long long)c->B, (long long)c->L, c->V, c->Vp);
        return HDLM_EINVAL;
    }
    if (c->mask_id != -1 && (c->mask_id < c->V || c->mask_id >= c->Vp)) {
        snprintf(err, err_cap, "mask_id = %d must be -1 or an extra symbol in %d..%d", c->mask_id,
                 c->V, c->Vp - 1);
        return HDLM_EINVAL;
    }
    if (!c->x || !c->state || !c->fixed || !c->probs || !c->draw || !c->event) {
        snprintf(err, err_cap, "ctx field x, state, fixed, probs, draw or event is NULL");
        return HDLM_EINVAL;
    }
    for (int64_t j = 0; j < c->B * c->L; j++)
        if (c->x[j] < 0 || c->x[j] >= c->Vp) {
            snprintf(err, err_cap, "x[%lld] = %d is outside 0..%d", (long long)j, c->x[j],
                     c->Vp - 1);
            return HDLM_EINVAL;
        }
    return HDLM_OK;
}

static int ay_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    (void)self;
    int rc = ay_check(ctx, err, err_cap);
    if (rc) return rc;
    const int32_t Vp = ctx->Vp, M = ctx->mask_id;
    for (int64_t b = 0; b < ctx->B; b++)
        for (int64_t i = 0; i < ctx->L; i++) {
            const int64_t j = b * ctx->L + i;
            if (ctx->fixed[j] || ctx->state[j] != HDLM_ACTIVE) continue;
            const double *row = ctx->probs + j * Vp; /* (Vp) */
            double all = 0;
            int bad = 0;
            for (int32_t v = 0; v < Vp; v++) {
                bad |= !(row[v] >= 0);
                all += row[v];
            }
            if (bad || !(all > 0) || !isfinite(all)) {
                snprintf(err, err_cap,
                         "reverse row of (b %lld, i %lld) is not a probability vector "
                         "(sum %g%s)",
                         (long long)b, (long long)i, all, bad ? ", negative or NaN entries" : "");
                return HDLM_EINVAL;
            }
            const int32_t tok = ctx->draw(ctx->core, row, Vp);
            if (tok < 0 || tok >= Vp) {
                snprintf(err, err_cap, "draw returned %d at position %lld, expected 0..%d", tok,
                         (long long)j, Vp - 1);
                return HDLM_EPLUGIN;
            }
            const int32_t old = ctx->x[j];
            if (tok == old) continue;
            const int kind = old == M   ? HDLM_EVENT_UNMASK
                             : tok == M ? HDLM_EVENT_REMASK
                                        : HDLM_EVENT_CORRECT;
            ctx->event(ctx->core, b, i, old, tok, row[tok] / all, kind);
            ctx->x[j] = tok;
        }
    return HDLM_OK;
}

static void ay_info(void *self, hdlm_info *info) {
    (void)self;
    info->needs = HDLM_INFO_SCORE; /* the reverse rows come from the model's scores */
}

static const hdlm_sampler_ops ay_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = ay_info},
    .step = ay_step,
};

static const hdlm_plugin ay_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "analytic",
    .version = "1.0.0",
    .summary = "gamma-family Tweedie tau-leaping step: draw every active position from its row",
    .options = NULL,
    .create = ay_create,
    .destroy = ay_destroy,
    .ops = &ay_ops,
};

HDLM_PLUGIN_DEFINE(ay_desc)
