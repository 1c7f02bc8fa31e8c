/* confidence: confidence-ordered unmasking (MaskGIT / LLaDA "low-confidence remasking" style).
 * Per sequence, among its ACTIVE, non-fixed, masked positions, the model's confidence is
 * c = max_y softmax(logits[0..V))_y — the raw model distribution (temperature 1, no top-k/top-p),
 * so the ordering does not depend on the run's sampling settings. The n most confident positions
 * are unmasked, where n = k if k > 0, else ceil(fraction·#masked) if fraction > 0, else
 * round(Σ (1 − p(stay M))) over the masked positions (what ancestral unmasks on average), and
 * positions that must be fully denoised this step (t_next = 0) are always among them (n is raised
 * to their count, the rest ranked by c). Ties are broken by position (lower first). Visible
 * positions are never changed (no corrections); the process must have a mask symbol.
 * Tokens: ctx->draw over the real-token entries of the process's reverse row (its share of the
 * real-token mass is the event p); a row with no real-token mass (p(stay M) = 1) falls back to
 * softmax(logits[0..V)).
 * Draw order: no host->uniform; per sequence b (in order), one ctx->draw per selected position
 * in increasing position order. */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct cf_cand {
    double conf;
    int64_t i;
    int must; /* must be fully denoised this step */
} cf_cand;

typedef struct confidence {
    int64_t k;
    double fraction;
    cf_cand *cand; /* (cap_l) candidates of one sequence */
    int64_t cap_l;
    double *soft; /* (cap_v) softmax scratch for the fallback */
    int32_t cap_v;
} confidence;

static const hdlm_option cf_options[] = {
    {"k", HDLM_OPT_INTEGER, "0", "positions unmasked per step and sequence (0 = use fraction)",
     NULL},
    {"fraction", HDLM_OPT_NUMBER, "0",
     "share of the masked positions unmasked per step (0 = as many as ancestral on average)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static int cf_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double k = 0, fraction = 0;
    if (host->opt_number(opts, "k", &k) || !(k >= 0 && k <= 1e15) || k != floor(k)) {
        snprintf(err, err_cap, "option 'k' must be an integer >= 0, got %g", k);
        return HDLM_EINVAL;
    }
    if (host->opt_number(opts, "fraction", &fraction) || !(fraction >= 0 && fraction <= 1)) {
        snprintf(err, err_cap, "option 'fraction' must be in [0, 1], got %g", fraction);
        return HDLM_EINVAL;
    }
    confidence *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_cap, "out of memory");
        return HDLM_ENOMEM;
    }
    c->k = (int64_t)k;
    c->fraction = fraction;
    *self = c;
    return HDLM_OK;
}

static void cf_destroy(void *self) {
    confidence *c = self;
    if (!c) return;
    free(c->cand);
    free(c->soft);
    free(c);
}

/* What step relies on: the arrays it reads, a mask id among the extra symbols, tokens in range. */
static int cf_check(const hdlm_sampler_ctx *c, char *err, size_t err_cap) {
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
                 "confidence needs a process with a mask symbol (mask_id = %d); use "
                 "ancestral or analytic",
                 c->mask_id);
        return HDLM_EINVAL;
    }
    if (c->mask_id < c->V || c->mask_id >= c->Vp) {
        snprintf(err, err_cap, "mask_id = %d must be an extra symbol in %d..%d", c->mask_id, c->V,
                 c->Vp - 1);
        return HDLM_EINVAL;
    }
    if (!c->x || !c->state || !c->fixed || !c->t_next || !c->logits || !c->probs || !c->draw ||
        !c->event) {
        snprintf(err, err_cap,
                 "ctx field x, state, fixed, t_next, logits, probs, draw or "
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

/* Must-denoise first, then higher confidence, then lower position: a total order, so qsort's
 * result does not depend on its algorithm. */
static int cf_by_rank(const void *pa, const void *pb) {
    const cf_cand *a = pa, *b = pb;
    if (a->must != b->must) return a->must ? -1 : 1;
    if (a->conf != b->conf) return a->conf > b->conf ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int cf_by_position(const void *pa, const void *pb) {
    const cf_cand *a = pa, *b = pb;
    return (a->i > b->i) - (a->i < b->i);
}

/* softmax(lg[0..V)) into out (unnormalised, max entry 1); returns the sum, or -1 when a logit is
 * not finite. */
static double cf_softmax(const float *lg, int32_t V, double *out) {
    double mx = lg[0], z = 0;
    for (int32_t v = 1; v < V; v++)
        if (lg[v] > mx) mx = lg[v];
    if (!isfinite(mx)) return -1;
    for (int32_t v = 0; v < V; v++) {
        if (!isfinite(lg[v])) return -1;
        double e = exp((double)lg[v] - mx);
        if (out) out[v] = e;
        z += e;
    }
    return z;
}

static int cf_grow(confidence *c, int64_t L, int32_t V, char *err, size_t err_cap) {
    if (L > c->cap_l) {
        cf_cand *p = realloc(c->cand, sizeof(cf_cand) * (size_t)L);
        if (!p) {
            snprintf(err, err_cap, "out of memory for %lld candidates", (long long)L);
            return HDLM_ENOMEM;
        }
        c->cand = p;
        c->cap_l = L;
    }
    if (V > c->cap_v) {
        double *p = realloc(c->soft, sizeof(double) * (size_t)V);
        if (!p) {
            snprintf(err, err_cap, "out of memory for %d softmax entries", V);
            return HDLM_ENOMEM;
        }
        c->soft = p;
        c->cap_v = V;
    }
    return HDLM_OK;
}

/* Unmasks one selected position (b, i). */
static int cf_unmask(confidence *c, hdlm_sampler_ctx *ctx, int64_t b, int64_t i, char *err,
                     size_t err_cap) {
    const int32_t V = ctx->V, Vp = ctx->Vp;
    const int64_t j = b * ctx->L + i;
    const double *row = ctx->probs + j * Vp; /* (Vp) */
    double real = 0;
    for (int32_t v = 0; v < V; v++)
        real += row[v];
    const double *w = row;
    if (!(real > 0) || !isfinite(real)) {
        real = cf_softmax(ctx->logits + j * Vp, V, c->soft); /* checked finite by the ranking */
        w = c->soft;
    }
    const int32_t tok = ctx->draw(ctx->core, w, V);
    if (tok < 0 || tok >= V) {
        snprintf(err, err_cap, "draw returned %d at position %lld, expected 0..%d", tok,
                 (long long)j, V - 1);
        return HDLM_EPLUGIN;
    }
    ctx->event(ctx->core, b, i, ctx->x[j], tok, w[tok] / real, HDLM_EVENT_UNMASK);
    ctx->x[j] = tok;
    return HDLM_OK;
}

static int cf_step(void *self, hdlm_sampler_ctx *ctx, char *err, size_t err_cap) {
    confidence *c = self;
    int rc = cf_check(ctx, err, err_cap);
    if (rc) return rc;
    if ((rc = cf_grow(c, ctx->L, ctx->V, err, err_cap))) return rc;
    const int32_t V = ctx->V, Vp = ctx->Vp, M = ctx->mask_id;
    for (int64_t b = 0; b < ctx->B; b++) {
        int64_t n_cand = 0, n_must = 0;
        double expected = 0; /* Σ p_tr: what ancestral would unmask on average */
        for (int64_t i = 0; i < ctx->L; i++) {
            const int64_t j = b * ctx->L + i;
            if (ctx->fixed[j] || ctx->state[j] != HDLM_ACTIVE || ctx->x[j] != M) continue;
            const double z = cf_softmax(ctx->logits + j * Vp, V, NULL);
            if (z < 0) {
                snprintf(err, err_cap, "logits of (b %lld, i %lld) are not finite", (long long)b,
                         (long long)i);
                return HDLM_EINVAL;
            }
            const double *row = ctx->probs + j * Vp;
            double real = 0;
            for (int32_t v = 0; v < V; v++)
                real += row[v];
            const double all = real + row[M];
            cf_cand *cd = &c->cand[n_cand++];
            cd->conf = 1.0 / z; /* the largest softmax entry: exp(0)/z */
            cd->i = i;
            cd->must = !(ctx->t_next[j] > 0);
            n_must += cd->must;
            expected += cd->must ? 1.0 : all > 0 && isfinite(all) ? real / all : 0;
        }
        if (n_cand == 0) continue;
        int64_t n;
        if (c->k > 0)
            n = c->k;
        else if (c->fraction > 0) /* the 1e-9 keeps 0.3·10 = 3.0000000000000004 at 3 */
            n = (int64_t)ceil(c->fraction * (double)n_cand - 1e-9);
        else
            n = (int64_t)llround(expected);
        if (n < n_must) n = n_must;
        if (n > n_cand) n = n_cand;
        if (n == 0) continue;
        qsort(c->cand, (size_t)n_cand, sizeof(cf_cand), cf_by_rank);
        qsort(c->cand, (size_t)n, sizeof(cf_cand), cf_by_position);
        for (int64_t r = 0; r < n; r++)
            if ((rc = cf_unmask(c, ctx, b, c->cand[r].i, err, err_cap))) return rc;
    }
    return HDLM_OK;
}

static void cf_info(void *self, hdlm_info *info) {
    (void)self;
    info->needs = 0;
}

static const hdlm_sampler_ops cf_ops = {
    .head = {.struct_size = sizeof(hdlm_sampler_ops), .info = cf_info},
    .step = cf_step,
};

static const hdlm_plugin cf_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_SAMPLER,
    .name = "confidence",
    .version = "1.0.0",
    .summary = "unmask the most confident masked positions first (k, fraction or ancestral count)",
    .options = cf_options,
    .create = cf_create,
    .destroy = cf_destroy,
    .ops = &cf_ops,
};

HDLM_PLUGIN_DEFINE(cf_desc)
