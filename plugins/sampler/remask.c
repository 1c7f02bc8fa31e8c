/* remask: ReMDM-style remasking (Wang et al. 2025, "Remasking Discrete Diffusion Models"), not the
 * reference's `remask`/`remdm` (docs/deviations.md). Per ACTIVE, non-fixed position, with α(t) the
 * noise process's probability of not being masked at t (the core's ctx->alpha, from the process's
 * exact marginal: 1 − t for absorbing/ε-hybrid, e^{−(1−γ)σ(t)} for γ-hybrid), α_t = α(t_now),
 * α_s = α(t_next) and σ_max = min(1, (1 − α_s)/α_t) (1 when α_t = 0):
 *   rule "cap":      σ = min(η, σ_max)          rule "rescale":  σ = η·σ_max
 *   visible (decoded) position: set back to M with probability σ (event REMASK, p = σ);
 *   masked position: unmasked with the ReMDM posterior probability
 *                    p_u = (α_s − (1 − σ)·α_t)/(1 − α_t), token drawn from the real-token
 *                    entries of the process's reverse row (as ancestral; event p = the token's
 *                    share of the real-token mass). σ = 0 gives p_u = 1 − s/t: the MDLM step.
 * A position that must be fully denoised this step (t_next = 0) has σ = 0 and p_u = 1. The
 * process's row supplies the token distribution only; its p(stay M) and any mass it puts on
 * other tokens at visible positions (γ corrections) are ignored. Needs a mask symbol.
 * Draw order: row-major over (B, L); every ACTIVE non-fixed position draws one host->uniform u
 * (masked: unmask if u < p_u, then one ctx->draw over the V real entries; visible: remask if
 * u < σ). Decisions use the state at the start of the step. */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct remask {
    const hdlm_host *host; /* kept for host->uniform */
    double eta;
    int rescale; /* rule == "rescale" */
} remask;

static const hdlm_option rm_options[] = {
    {"eta", HDLM_OPT_NUMBER, "0.01", "remasking strength: the cap (or scale) of sigma_t", NULL},
    {"rule", HDLM_OPT_STRING, "cap",
     "sigma_t schedule: cap = min(eta, sigma_max), rescale = eta * sigma_max", "cap|rescale"},
    {NULL, 0, NULL, NULL, NULL},
};

static int rm_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double eta = 0;
    const char *rule = NULL;
    if (host->opt_number(opts, "eta", &eta) || !(eta >= 0 && eta <= 1)) {
        snprintf(err, err_cap, "option 'eta' must be in [0, 1], got %g", eta);
        return HDLM_EINVAL;
    }
    if (host->opt_string(opts, "rule", &rule) ||
        (strcmp(rule, "cap") != 0 && strcmp(rule, "rescale") != 0)) {
        snprintf(err, err_cap, "option 'rule' must be cap or rescale, got '%s'",
                 rule ? rule : "(none)");
        return HDLM_EINVAL;
    }
    remask *r = malloc(sizeof *r);
    if (!r) {
        snprintf(err, err_cap, "out of memory");
        return HDLM_ENOMEM;
    }
    r->host = host;
    r->eta = eta;
    r->rescale = strcmp(rule, "rescale") == 0;
    *self = r;
    return HDLM_OK;
}

static void rm_destroy(void *self) {
    free(self);
}

/* What step relies on: the arrays it reads, a mask id among the extra symbols, tokens in range. */
static int rm_check(const hdlm_sampler_ctx *c, char *err, size_t err_cap) {
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
    if (c->mask_id < 0) {
        snprintf(err, err_cap,
                 "remask needs a process with a mask symbol (mask_id = %d); use ancestral "
                 "or analytic",
                 c->mask_id);
        return HDLM_EINVAL;
    }
    if (c->mask_id < c->V || c->mask_id >= c->Vp) {
        snprintf(err, err_cap, "mask_id = %d must be an extra symbol in %d..%d", c->mask_id, c->V,
                 c->Vp - 1);
        return HDLM_EINVAL;
    }
    if (!c->x || !c->state || !c->fixed || !c->t_now || !c->t_next || !c->probs || !c->draw ||
        !c->event) {
        snprintf(err, err_cap,
                 "ctx field x, state, fixed, t_now, t_next, probs, draw or "
                 "event is NULL");
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

/* α(t) of the noise process (probability of not being masked): asked from the core when the
 * context offers it, else the linear schedule's 1 − t. */
static double rm_alpha(const hdlm_sampler_ctx *c, double t) {
    if (c->struct_size >= offsetof(hdlm_sampler_ctx, alpha) + sizeof c->alpha && c->alpha)
        return c->alpha(c->core, t);
    return 1 - t;
}

/* σ_t of the header for one position (0 when it must be fully denoised), from α_t = α(t_now) and
 * α_s = α(t_next). */
static double rm_sigma(const remask *r, double alpha_t, double alpha_s, double t_next) {
    if (!(t_next > 0)) return 0;
    double smax = alpha_t > 0 ? (1 - alpha_s) / alpha_t : 1;
    if (smax > 1) smax = 1;
    return r->rescale ? r->eta * smax : (r->eta < smax ? r->eta : smax);
}

static int rm_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    const remask *r = self;
    int rc = rm_check(ctx, err, err_cap);
    if (rc) return rc;
    const int32_t V = ctx->V, Vp = ctx->Vp, M = ctx->mask_id;
    for (int64_t b = 0; b < ctx->B; b++)
        for (int64_t i = 0; i < ctx->L; i++) {
            const int64_t j = b * ctx->L + i;
            if (ctx->fixed[j] || ctx->state[j] != HDLM_ACTIVE) continue;
            const double t_now = ctx->t_now[j], t_next = ctx->t_next[j];
            const double alpha_t = rm_alpha(ctx, t_now), alpha_s = rm_alpha(ctx, t_next);
            const double sigma = rm_sigma(r, alpha_t, alpha_s, t_next);
            const int32_t old = ctx->x[j];
            const double u = r->host->uniform(ctx->rng);
            if (old != M) {
                if (u < sigma) {
                    ctx->event(ctx->core, b, i, old, M, sigma, HDLM_EVENT_REMASK);
                    ctx->x[j] = M;
                }
                continue;
            }
            /* ReMDM posterior of leaving the mask: (α_s − (1 − σ)α_t)/(1 − α_t) */
            double p_u = 1;
            if (t_next > 0 && alpha_t < 1) p_u = (alpha_s - (1 - sigma) * alpha_t) / (1 - alpha_t);
            if (p_u > 1) p_u = 1;
            if (!(u < p_u)) continue;
            const double *row = ctx->probs + j * Vp; /* (Vp) */
            double real = 0;
            for (int32_t v = 0; v < V; v++)
                real += row[v];
            if (!(real > 0) || !isfinite(real)) {
                snprintf(err, err_cap,
                         "reverse row of masked position (b %lld, i %lld) has no finite "
                         "mass on real tokens (sum %g)",
                         (long long)b, (long long)i, real);
                return HDLM_EINVAL;
            }
            const int32_t tok = ctx->draw(ctx->core, row, V);
            if (tok < 0 || tok >= V) {
                snprintf(err, err_cap, "draw returned %d at position %lld, expected 0..%d", tok,
                         (long long)j, V - 1);
                return HDLM_EPLUGIN;
            }
            ctx->event(ctx->core, b, i, old, tok, row[tok] / real, HDLM_EVENT_UNMASK);
            ctx->x[j] = tok;
        }
    return HDLM_OK;
}

static void rm_info(void *self, hdlm_info *info) {
    (void)self;
    info->needs = 0;
}

static const hdlm_sampler_ops rm_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = rm_info},
    .step = rm_step,
};

static const hdlm_plugin rm_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "remask",
    .version = "1.1.0",
    .summary = "ReMDM remasking: decoded tokens return to the mask w.p. sigma_t (cap/rescale)",
    .options = rm_options,
    .create = rm_create,
    .destroy = rm_destroy,
    .ops = &rm_ops,
};

HDLM_PLUGIN_DEFINE(rm_desc)
