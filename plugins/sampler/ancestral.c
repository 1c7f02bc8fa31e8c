/* ancestral: the plain reverse step of the noise process (MDLM ancestral, docs/method.md "Samplers"
 * `original`). A masked ACTIVE position leaves the mask with probability p_tr = 1 − probs[M]/Σ(row)
 * (1 when it must be fully denoised: t_next = 0) and takes a token drawn from the row's real-token
 * entries; a visible position whose row is not a point mass on its token (score/uniform processes:
 * γ error correction) is redrawn from the whole row. Works with every process; with the
 * autoregressive schedule it is plain AR sampling. No corrections of its own (see acs).
 *
 * Draw order (row-major over (B, L); fixed and non-ACTIVE positions draw nothing):
 *   masked position:  one host->uniform u (always); if u < p_tr, one ctx->draw over the V real
 *                     entries of the row.
 *   visible position: one ctx->draw over all Vp entries, only when the row has mass off x.
 * Event p: the row probability of the chosen token, normalised over the entries drawn from. */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ancestral {
    const hdlm_host *host; /* kept for host->uniform */
} ancestral;

static int an_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    (void)opts;
    ancestral *a = malloc(sizeof *a);
    if (!a) {
        snprintf(err, err_cap, "out of memory");
        return HDLM_ENOMEM;
    }
    a->host = host;
    *self = a;
    return HDLM_OK;
}

static void an_destroy(void *self) {
    free(self);
}

/* What step relies on: the arrays it reads, a mask id among the extra symbols, tokens in range. */
static int an_check(const hdlm_sampler_ctx *c, char *err, size_t err_cap) {
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
    if (!c->x || !c->state || !c->fixed || !c->t_next || !c->probs || !c->draw || !c->event) {
        snprintf(err, err_cap,
                 "ctx field x, state, fixed, t_next, probs, draw or event is "
                 "NULL");
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

static int an_bad_draw(int32_t tok, int32_t n, int64_t j, char *err, size_t err_cap) {
    snprintf(err, err_cap, "draw returned %d at position %lld, expected 0..%d", tok, (long long)j,
             n - 1);
    return HDLM_EPLUGIN;
}

static int an_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    const ancestral *a = self;
    int rc = an_check(ctx, err, err_cap);
    if (rc) return rc;
    const int32_t V = ctx->V, Vp = ctx->Vp, M = ctx->mask_id;
    for (int64_t b = 0; b < ctx->B; b++)
        for (int64_t i = 0; i < ctx->L; i++) {
            const int64_t j = b * ctx->L + i;
            if (ctx->fixed[j] || ctx->state[j] != HDLM_ACTIVE) continue;
            const double *row = ctx->probs + j * Vp; /* (Vp) */
            const int32_t old = ctx->x[j];
            if (M >= 0 && old == M) {
                double real = 0;
                for (int32_t v = 0; v < V; v++)
                    real += row[v];
                const double all = real + row[M];
                double p_tr = all > 0 ? real / all : 0;
                if (!(ctx->t_next[j] > 0)) p_tr = 1; /* must be fully denoised this step */
                const double u = a->host->uniform(ctx->rng);
                if (!(u < p_tr)) continue;
                if (!(real > 0) || !isfinite(real)) {
                    snprintf(err, err_cap,
                             "reverse row of masked position (b %lld, i %lld) has no "
                             "finite mass on real tokens (sum %g)",
                             (long long)b, (long long)i, real);
                    return HDLM_EINVAL;
                }
                const int32_t tok = ctx->draw(ctx->core, row, V);
                if (tok < 0 || tok >= V) return an_bad_draw(tok, V, j, err, err_cap);
                ctx->event(ctx->core, b, i, old, tok, row[tok] / real, HDLM_EVENT_UNMASK);
                ctx->x[j] = tok;
                continue;
            }
            double all = 0;
            for (int32_t v = 0; v < Vp; v++)
                all += row[v];
            if (!(all - row[old] > 0)) continue; /* point mass on x: nothing to draw */
            if (!isfinite(all)) {
                snprintf(err, err_cap, "reverse row of (b %lld, i %lld) sums to %g", (long long)b,
                         (long long)i, all);
                return HDLM_EINVAL;
            }
            const int32_t tok = ctx->draw(ctx->core, row, Vp);
            if (tok < 0 || tok >= Vp) return an_bad_draw(tok, Vp, j, err, err_cap);
            if (tok == old) continue;
            ctx->event(ctx->core, b, i, old, tok, row[tok] / all,
                       tok == M ? HDLM_EVENT_REMASK : HDLM_EVENT_CORRECT);
            ctx->x[j] = tok;
        }
    return HDLM_OK;
}

static void an_info(void *self, hdlm_info *info) {
    (void)self;
    info->needs = 0;
}

static const hdlm_sampler_ops an_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = an_info},
    .step = an_step,
};

static const hdlm_plugin an_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "ancestral",
    .version = "1.0.0",
    .summary = "MDLM ancestral step: unmask with probability 1 - p(stay M), token from the row",
    .options = NULL,
    .create = an_create,
    .destroy = an_destroy,
    .ops = &an_ops,
};

HDLM_PLUGIN_DEFINE(an_desc)
