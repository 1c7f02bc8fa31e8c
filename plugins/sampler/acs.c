/* acs: the Adaptive Correction Sampler (docs/method.md "Samplers" `acs`): the ancestral step, plus
 * every position that was visible at the start of the step (ACTIVE, not fixed) is resampled with
 * probability η·t_next/t_now (η·s/t) from the model's own distribution there — the softmax of
 * ctx->logits over the V real tokens (never the mask, unlike the reference's Gumbel-max over V+1
 * classes). Settled positions are never corrected (the KV cache holds them). Meaningful only for
 * models trained to repair visible tokens (ε-hybrid with ε > 0); elsewhere the logits at visible
 * positions are untrained. Requires nothing of the process (needs = 0).
 *
 * Draw order (row-major over (B, L), one pass; fixed and non-ACTIVE positions draw nothing):
 *   masked position:  exactly as ancestral (one host->uniform; a ctx->draw over the V real row
 *                     entries when it unmasks).
 *   visible position: as ancestral (a ctx->draw over the whole row only when the row has mass off
 *                     x), then, ONLY when η > 0 (and the token is still not M), one
 *                     host->uniform c; if c < η·t_next/t_now, one ctx->draw over
 *                     softmax(logits[0..V)) — a second event when a γ row already moved it.
 * So η = 0 consumes exactly ancestral's stream and gives token-for-token its output.
 * Event p: probability of the chosen token under the distribution it was drawn from
 * (normalised, before the run's temperature/top-k/top-p). */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct acs {
    const hdlm_host *host; /* kept for host->uniform */
    double eta;
    double *soft; /* (cap) softmax scratch, grown to V */
    int32_t cap;
} acs;

static const hdlm_option acs_options[] = {
    {"eta", HDLM_OPT_NUMBER, "0.01",
     "correction rate: a visible token is resampled with probability eta*s/t (0 = ancestral)",
     NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static int acs_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double eta = 0;
    if (host->opt_number(opts, "eta", &eta) || !(eta >= 0 && eta <= 1)) {
        snprintf(err, err_cap, "option 'eta' must be in [0, 1], got %g", eta);
        return HDLM_EINVAL;
    }
    acs *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_cap, "out of memory");
        return HDLM_ENOMEM;
    }
    s->host = host;
    s->eta = eta;
    *self = s;
    return HDLM_OK;
}

static void acs_destroy(void *self) {
    acs *s = self;
    if (!s) return;
    free(s->soft);
    free(s);
}

/* What step relies on: the arrays it reads, a mask id among the extra symbols, tokens in range. */
static int acs_check(const hdlm_sampler_ctx *c, int need_logits, char *err, size_t err_cap) {
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
    if (!c->x || !c->state || !c->fixed || !c->t_now || !c->t_next || !c->probs || !c->draw ||
        !c->event || (need_logits && !c->logits)) {
        snprintf(err, err_cap,
                 "ctx field x, state, fixed, t_now, t_next, logits, probs, "
                 "draw or event is NULL");
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

static int acs_bad_draw(int32_t tok, int32_t n, int64_t j, char *err, size_t err_cap) {
    snprintf(err, err_cap, "draw returned %d at position %lld, expected 0..%d", tok, (long long)j,
             n - 1);
    return HDLM_EPLUGIN;
}

/* The ancestral move of one position (see ancestral.c); identical draws. */
static int acs_ancestral(const acs *s, hdlm_sampler_ctx *ctx, int64_t b, int64_t i, char *err,
                         size_t err_cap) {
    const int32_t V = ctx->V, Vp = ctx->Vp, M = ctx->mask_id;
    const int64_t j = b * ctx->L + i;
    const double *row = ctx->probs + j * Vp; /* (Vp) */
    const int32_t old = ctx->x[j];
    if (M >= 0 && old == M) {
        double real = 0;
        for (int32_t v = 0; v < V; v++)
            real += row[v];
        const double all = real + row[M];
        double p_tr = all > 0 ? real / all : 0;
        if (!(ctx->t_next[j] > 0)) p_tr = 1; /* must be fully denoised this step */
        const double u = s->host->uniform(ctx->rng);
        if (!(u < p_tr)) return HDLM_OK;
        if (!(real > 0) || !isfinite(real)) {
            snprintf(err, err_cap,
                     "reverse row of masked position (b %lld, i %lld) has no finite mass on "
                     "real tokens (sum %g)",
                     (long long)b, (long long)i, real);
            return HDLM_EINVAL;
        }
        const int32_t tok = ctx->draw(ctx->core, row, V);
        if (tok < 0 || tok >= V) return acs_bad_draw(tok, V, j, err, err_cap);
        ctx->event(ctx->core, b, i, old, tok, row[tok] / real, HDLM_EVENT_UNMASK);
        ctx->x[j] = tok;
        return HDLM_OK;
    }
    double all = 0;
    for (int32_t v = 0; v < Vp; v++)
        all += row[v];
    if (!(all - row[old] > 0)) return HDLM_OK; /* point mass on x: nothing to draw */
    if (!isfinite(all)) {
        snprintf(err, err_cap, "reverse row of (b %lld, i %lld) sums to %g", (long long)b,
                 (long long)i, all);
        return HDLM_EINVAL;
    }
    const int32_t tok = ctx->draw(ctx->core, row, Vp);
    if (tok < 0 || tok >= Vp) return acs_bad_draw(tok, Vp, j, err, err_cap);
    if (tok == old) return HDLM_OK;
    ctx->event(ctx->core, b, i, old, tok, row[tok] / all,
               tok == M ? HDLM_EVENT_REMASK : HDLM_EVENT_CORRECT);
    ctx->x[j] = tok;
    return HDLM_OK;
}

/* The correction of one visible position: resample from softmax(logits[0..V)) w.p. η·s/t. */
static int acs_correct(acs *s, hdlm_sampler_ctx *ctx, int64_t b, int64_t i, char *err,
                       size_t err_cap) {
    const int32_t V = ctx->V;
    const int64_t j = b * ctx->L + i;
    const double t = ctx->t_now[j], tn = ctx->t_next[j];
    double p = t > 0 && tn > 0 ? s->eta * tn / t : 0;
    if (p > 1) p = 1;
    const double c = s->host->uniform(ctx->rng);
    if (!(c < p)) return HDLM_OK;
    const float *lg = ctx->logits + j * ctx->Vp; /* (Vp) */
    double mx = lg[0], z = 0;
    for (int32_t v = 1; v < V; v++)
        if (lg[v] > mx) mx = lg[v];
    for (int32_t v = 0; v < V; v++)
        z += s->soft[v] = exp((double)lg[v] - mx);
    if (!isfinite(mx) || !isfinite(z)) {
        snprintf(err, err_cap, "logits of (b %lld, i %lld) are not finite", (long long)b,
                 (long long)i);
        return HDLM_EINVAL;
    }
    const int32_t tok = ctx->draw(ctx->core, s->soft, V);
    if (tok < 0 || tok >= V) return acs_bad_draw(tok, V, j, err, err_cap);
    const int32_t old = ctx->x[j];
    if (tok == old) return HDLM_OK;
    ctx->event(ctx->core, b, i, old, tok, s->soft[tok] / z, HDLM_EVENT_CORRECT);
    ctx->x[j] = tok;
    return HDLM_OK;
}

static int acs_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    acs *s = self;
    int rc = acs_check(ctx, s->eta > 0, err, err_cap);
    if (rc) return rc;
    if (s->eta > 0 && ctx->V > s->cap) {
        double *p = realloc(s->soft, sizeof(double) * (size_t)ctx->V);
        if (!p) {
            snprintf(err, err_cap, "out of memory for %d softmax entries", ctx->V);
            return HDLM_ENOMEM;
        }
        s->soft = p;
        s->cap = ctx->V;
    }
    const int32_t M = ctx->mask_id;
    for (int64_t b = 0; b < ctx->B; b++)
        for (int64_t i = 0; i < ctx->L; i++) {
            const int64_t j = b * ctx->L + i;
            if (ctx->fixed[j] || ctx->state[j] != HDLM_ACTIVE) continue;
            const int visible = M < 0 || ctx->x[j] != M; /* at the start of the step */
            if ((rc = acs_ancestral(s, ctx, b, i, err, err_cap))) return rc;
            /* (a visible token the process's own row sent back to M is not "corrected") */
            if (visible && s->eta > 0 && (M < 0 || ctx->x[j] != M) &&
                (rc = acs_correct(s, ctx, b, i, err, err_cap)))
                return rc;
        }
    return HDLM_OK;
}

static void acs_info(void *self, hdlm_info *info) {
    (void)self;
    info->needs = 0;
}

static const hdlm_sampler_ops acs_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = acs_info},
    .step = acs_step,
};

static const hdlm_plugin acs_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "acs",
    .version = "1.0.0",
    .summary = "adaptive correction: ancestral step + resample visible tokens w.p. eta*s/t",
    .options = acs_options,
    .create = acs_create,
    .destroy = acs_destroy,
    .ops = &acs_ops,
};

HDLM_PLUGIN_DEFINE(acs_desc)
